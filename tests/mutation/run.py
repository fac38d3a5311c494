"""Mutation check: would the fast tests notice a plausible bug in scoring/?

Why it exists: a green suite only says the code agrees with the tests; it does not say the tests
would catch a wrong number. tests/mutation/mutants.toml keeps a list of planted bugs, each a real
mistake someone could make in scoring/ (a boundary moved, a condition dropped, a prior
forgotten), named for the SCORING.md rule it breaks. This plants each one in a temporary copy of
the repository, runs the fast tests there, and reports it killed (a test failed) or survived,
then the kill rate. A survivor is either equivalent to the original code (drop it from the list)
or a gap in the tests (add a test that kills it). docs/testing.md records the last rate.

    python -m tests.mutation.run [--only ID ...] [--jobs N] [--tests PATH ...] [--json PATH]

`make mutation` runs it; neither `make test` nor CI does. The working tree is never written:
each worker gets its own copy under a temporary directory, puts each mutant in and takes it out
again, and the directory is removed at the end, or when the run is interrupted. A stale list (a
snippet not found exactly once) stops the run before anything is tested, naming the mutant, and
so does a baseline (the copy without a mutant) whose tests fail. Otherwise it exits 0, whatever
survives: the rate is information, not a gate.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn

REPO = Path(__file__).resolve().parents[2]
MUTANTS_FILE = Path(__file__).with_name("mutants.toml")
# What a copy needs to run the tests: the packages, the tests and the sample they score.
COPIED = ("scoring", "pipelines", "tests", "data_samples", "pyproject.toml")
# The fast selection: hand-computed unit tests, the golden sample (with its oracle comparison)
# and the oracle's own tests. About a minute and a half on 2 busy cores.
FAST_TESTS = ("tests/scoring", "tests/test_golden.py", "tests/oracle")
# -rfE: the "FAILED <test>" summary line the first failing test is read from.
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "-rfE")
MUTATED_PACKAGE = "scoring"  # the only folder planted in
FIELDS = ("id", "file", "original", "mutant", "why")
DEFAULT_JOBS = 2
DEFAULT_TIMEOUT = 900.0  # seconds for one mutant's tests: a mutant that hangs counts as killed

EXIT_LIST_ERROR = 2
EXIT_BASELINE_FAILED = 3


class MutantListError(Exception):
    """The kept list cannot be used as it is: stale, malformed or planting broken code."""


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root, under scoring/
    original: str  # occurs exactly once in `file`
    mutant: str  # what replaces it
    why: str  # the rule of SCORING.md it breaks


@dataclass(frozen=True)
class Outcome:
    id: str
    file: str
    result: str  # "killed", "survived" or "timeout" (a timeout counts as killed)
    seconds: float
    first_failure: str | None  # the first failing test (or pytest's error), None if survived
    why: str

    @property
    def killed(self) -> bool:
        return self.result != "survived"


def load_mutants(path: Path = MUTANTS_FILE) -> list[Mutant]:
    """The list in `path`, each entry with every field, ids unique, files under scoring/."""
    with open(path, "rb") as fh:
        entries = tomllib.load(fh).get("mutant", [])
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        name = entry.get("id", f"entry {n}")
        missing = [f for f in FIELDS if not isinstance(entry.get(f), str)]
        unknown = sorted(set(entry) - set(FIELDS))
        if missing or unknown:
            raise MutantListError(f"mutant {name}: missing {missing}, unknown {unknown} fields")
        if name in seen:
            raise MutantListError(f"mutant {name}: the id is used twice")
        parts = PurePosixPath(entry["file"]).parts
        if len(parts) < 2 or parts[0] != MUTATED_PACKAGE or ".." in parts:
            raise MutantListError(f"mutant {name}: {entry['file']} is not under {MUTATED_PACKAGE}/")
        if entry["original"] == entry["mutant"] or not entry["original"]:
            raise MutantListError(f"mutant {name}: the mutant must change a non-empty snippet")
        seen.add(name)
        mutants.append(Mutant(**{f: entry[f] for f in FIELDS}))
    return mutants


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def mutated_text(text: str, mutant: Mutant) -> str:
    """`text` with the mutant's snippet replaced; MutantListError unless it occurs exactly once."""
    found = text.count(mutant.original)
    if found != 1:
        raise MutantListError(
            f"mutant {mutant.id} is stale: its original snippet occurs {found} times in "
            f"{mutant.file} (expected exactly once): {mutant.original!r}"
        )
    return text.replace(mutant.original, mutant.mutant)


def apply_mutant(root: Path, mutant: Mutant) -> str:
    """Plant `mutant` in the copy at `root`; return the file's text before, to restore it."""
    path = root / mutant.file
    if not path.is_file():
        raise MutantListError(f"mutant {mutant.id} is stale: {mutant.file} does not exist")
    before = _read(path)
    _write(path, mutated_text(before, mutant))
    return before


def check_mutants(root: Path, mutants: Iterable[Mutant]) -> None:
    """Every mutant applies to the files under `root` and plants code that compiles."""
    for mutant in mutants:
        path = root / mutant.file
        if not path.is_file():
            raise MutantListError(f"mutant {mutant.id} is stale: {mutant.file} does not exist")
        text = mutated_text(_read(path), mutant)
        try:
            compile(text, mutant.file, "exec")
        except SyntaxError as error:
            raise MutantListError(
                f"mutant {mutant.id} plants code that does not compile: {error}"
            ) from error


def make_copy(destination: Path, source: Path = REPO) -> Path:
    """What the tests need from `source`, copied under `destination` (without bytecode)."""
    destination.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, destination / name, ignore=skip)
        else:
            shutil.copy2(item, destination / name)
    return destination


def first_failure(output: str) -> str | None:
    """The first failing test (or erroring module) of a pytest run's summary, None if none."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0].strip()
    return None


def kill_rate_line(outcomes: Sequence[Outcome]) -> str:
    killed = sum(o.killed for o in outcomes)
    total = len(outcomes)
    percent = 100.0 * killed / total if total else 0.0
    return f"kill rate: {killed}/{total} ({percent:.0f}%)"


def format_table(outcomes: Sequence[Outcome]) -> str:
    header = ("id", "file", "result", "seconds", "first failing test")
    rows = [(o.id, o.file, o.result, f"{o.seconds:.1f}", o.first_failure or "-") for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: Sequence[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        return "  ".join([*cells, row[-1]]).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths] + ["-" * 18]), *map(line, rows)])


class Runner:
    """Runs pytest in copies, and can stop every pytest it started (on an interrupt)."""

    def __init__(self, tests: Sequence[str], timeout: float) -> None:
        self.tests = list(tests)
        self.timeout = timeout
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def environment(self, copy: Path) -> dict[str, str]:
        env = dict(os.environ)
        # The copy's packages win over the editable install of the working tree; no bytecode,
        # so a restored file is never run from a mutant's stale .pyc; the derandomized
        # Hypothesis profile, so a mutant is killed or not the same way every run.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["HYPOTHESIS_PROFILE"] = "ci"
        return env

    def run(self, copy: Path, args: Sequence[str]) -> tuple[int | None, str, float]:
        """`python args` in `copy`: (exit code, None on timeout; output; seconds)."""
        started = time.monotonic()
        if self._stopping.is_set():
            raise KeyboardInterrupt
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=copy,
            env=self.environment(copy),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with self._lock:
            self._running.add(process)
        try:
            output, _ = process.communicate(timeout=self.timeout)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            code = None
        finally:
            with self._lock:
                self._running.discard(process)
        return code, output, time.monotonic() - started

    def pytest(self, copy: Path) -> tuple[int | None, str, float]:
        return self.run(copy, ["-m", "pytest", *PYTEST_ARGS, *self.tests])

    def stop(self) -> None:
        """Stop every pytest still running and start no other."""
        self._stopping.set()
        with self._lock:
            for process in self._running:
                process.kill()


def imports_from(runner: Runner, copy: Path) -> list[Path]:
    """The folders the copy's tests import scoring and pipelines from (must be the copy's)."""
    code, output, _ = runner.run(
        copy,
        ["-c", "import scoring, pipelines; print(scoring.__file__); print(pipelines.__file__)"],
    )
    if code != 0:
        raise RuntimeError(f"cannot import the copy's packages:\n{output}")
    return [Path(line).resolve().parent.parent for line in output.splitlines() if line]


def run_mutant(mutant: Mutant, copies: queue.Queue[Path], runner: Runner) -> Outcome:
    """Plant `mutant` in a free copy, run the tests there, take it out again."""
    copy = copies.get()
    try:
        before = apply_mutant(copy, mutant)
        try:
            code, output, seconds = runner.pytest(copy)
        finally:
            _write(copy / mutant.file, before)
    finally:
        copies.put(copy)
    if code is None:
        result, failure = "timeout", f"no result after {runner.timeout:.0f} s"
    elif code == 0:
        result, failure = "survived", None
    else:
        result, failure = "killed", first_failure(output) or f"pytest exit {code}"
    return Outcome(mutant.id, mutant.file, result, seconds, failure, mutant.why)


def _interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def mutation_run(
    mutants: Sequence[Mutant], tests: Sequence[str], jobs: int, timeout: float
) -> tuple[list[Outcome], float] | None:
    """Baseline, then every mutant: (outcomes in list order, baseline seconds); None when the
    baseline fails (said on stderr)."""
    runner = Runner(tests, timeout)
    with tempfile.TemporaryDirectory(prefix="expscore-mutation-") as tmp:
        try:
            return _run_in(Path(tmp), runner, mutants, jobs)
        except BaseException:
            runner.stop()  # no pytest outlives the run, or writes into the removed copies
            raise


def _run_in(
    tmp: Path, runner: Runner, mutants: Sequence[Mutant], jobs: int
) -> tuple[list[Outcome], float] | None:
    workers = [make_copy(tmp / f"copy-{n}") for n in range(max(1, min(jobs, len(mutants))))]
    first = workers[0]
    roots = imports_from(runner, first)
    if any(root != first.resolve() for root in roots):
        print(f"the copy's tests would import from {roots}, not {first}", file=sys.stderr)
        return None
    print(f"baseline: {' '.join(runner.tests)} ...", flush=True)
    code, output, baseline_seconds = runner.pytest(first)
    if code != 0:
        print(output[-5000:], file=sys.stderr)
        print(
            f"the baseline (no mutant) does not pass (pytest exit {code}): fix the tests "
            "before measuring the mutants",
            file=sys.stderr,
        )
        return None
    print(f"baseline passed in {baseline_seconds:.0f} s", flush=True)
    copies: queue.Queue[Path] = queue.Queue()
    for copy in workers:
        copies.put(copy)
    done: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        futures = [pool.submit(run_mutant, m, copies, runner) for m in mutants]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                done[outcome.id] = outcome
                print(
                    f"[{len(done)}/{len(mutants)}] {outcome.id}: {outcome.result} "
                    f"({outcome.seconds:.0f} s)",
                    flush=True,
                )
        except BaseException:
            for future in futures:
                future.cancel()
            runner.stop()
            raise
    return [done[m.id] for m in mutants], baseline_seconds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation.run",
        description="Plant each bug of tests/mutation/mutants.toml in a temporary copy of the "
        "repository and run the fast tests against it; print the kill rate.",
    )
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, help="mutants run at once, each in its own copy"
    )
    parser.add_argument(
        "--tests", nargs="+", default=list(FAST_TESTS), metavar="PATH", help="pytest selection"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for one mutant's tests"
    )
    parser.add_argument("--mutants", type=Path, default=MUTANTS_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def select(mutants: Sequence[Mutant], only: Sequence[str] | None) -> list[Mutant]:
    if not only:
        return list(mutants)
    known = {m.id for m in mutants}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise MutantListError(f"no mutant with id {', '.join(unknown)} in the list")
    return [m for m in mutants if m.id in set(only)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        mutants = select(load_mutants(args.mutants), args.only)
        check_mutants(REPO, mutants)
    except MutantListError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_LIST_ERROR
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        result = mutation_run(mutants, args.tests, args.jobs, args.timeout)
    except KeyboardInterrupt:
        print("interrupted: the copies and their pytest runs are gone", file=sys.stderr)
        return 130
    if result is None:
        return EXIT_BASELINE_FAILED
    outcomes, baseline_seconds = result
    total_seconds = time.monotonic() - started
    print()
    print(format_table(outcomes))
    survivors = [o for o in outcomes if not o.killed]
    for o in survivors:
        print(f"survived: {o.id} ({o.file}): {o.why}")
    print(f"{len(outcomes)} mutants, {args.jobs} at a time, in {total_seconds:.0f} s")
    print(kill_rate_line(outcomes))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "tests": args.tests,
                    "baseline_seconds": round(baseline_seconds, 1),
                    "total_seconds": round(total_seconds, 1),
                    "killed": len(outcomes) - len(survivors),
                    "total": len(outcomes),
                    "mutants": [asdict(o) for o in outcomes],
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
