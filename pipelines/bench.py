"""`expscore bench`: time what `expscore run` does against the floor of reading its input once.

The harness treats the pipeline as a black box: every scenario is the real command line in a
child process (`python -m pipelines run|backfill ...`), so the figures are what a scheduler would
see, and they stay meaningful whatever the run does inside (a nightly run moves the window state
under `--out/.state`, a from-scratch run rebuilds it). Per child process it records

- wall time (a monotonic clock around the child),
- CPU time and peak RSS (`os.wait4` on the child's pid: that child alone, not the harness),
- per-stage seconds from the run manifests (`timings_seconds`, whatever stages they name),
- rows per second: rows of the raw window (counted from the Parquet footers, so the figure does
  not depend on what a run chooses to re-read) divided by the wall or stage seconds.

Scenarios, each repeated and reported as medians:

1. `floor`    one DuckDB query per log reading, once, every spec column of the nightly window's
              raw files (`count(*)` and `sum(hash(...))`, so the values are decoded, not only the
              footers): the time no implementation of the run can beat; `floor_day` reads the
              new day's files only, the floor of a nightly run that keeps state for the rest;
2. `backfill` a full backfill of the window's dates into an empty output folder;
3. `nightly`  the run of the day after the window on top of (a copy of) that backfill's output;
4. `scratch`  the same date from scratch: a fresh output folder holding only the previous day's
              published tables (the labels and weights a day carries over by the spec, and the
              scores its band gate compares with), nothing else a run may have kept.

`nightly` and `scratch` must publish identical tables; the harness compares every table of that
date and records the outcome. Runs pass `--force`: a quality gate tripped by synthetic data would
otherwise stop a backfill, while the work done is the same either way (the gates are evaluated and
the manifest's status says "forced").

Each child is guarded (`--max-rss-gib`, default 90% of the machine's memory, and `--timeout`):
one that passes a limit is killed and reported as failed, with how far it got, instead of
driving a shared machine into swapping; what depends on it (nightly and from-scratch need the
backfill) is reported as skipped, and the targets it feeds fail.

Generated data is kept under `--work` and reused when the same scale and seed were generated
before (generation of M takes minutes, L most of an hour).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pyarrow.parquet as pq
import typer

from pipelines.errors import ExpscoreError, InputError
from pipelines.load import column_list, sql_literal
from pipelines.options import LogFormatOption, use_log_format
from pipelines.published import partition_files, scan_day
from pipelines.run import manifest_path
from pipelines.schemas import LOGS
from scoring.daily import TABLE_SCHEMAS

GIB = 1024**3
MIB = 1024**2
START = dt.date(2026, 1, 1)
DEFAULT_SEED = 7
DEFAULT_WINDOW_DAYS = 30  # the shipped rules' window; other windows get a rules file of their own
JSON_SCHEMA_VERSION = 1
OTHER_WORK_CPUS = 0.5  # CPUs busy at the end of a benchmark, beyond which other work competed
SCENARIOS = ("floor", "floor_day", "backfill", "nightly", "scratch")
RUN_SCENARIOS = ("backfill", "nightly", "scratch")  # the ones that run expscore
STAGE_ORDER = ("state", "score", "publish")  # known stages first; others follow by name
PUBLISHED_TABLES = (*TABLE_SCHEMAS, "quarantine")


class BenchError(ExpscoreError):
    """A benchmarked command failed: the harness cannot report figures for it. Exit 1."""


@dataclass(frozen=True)
class Scale:
    """One benchmark size: the synthetic marketplace and the window the runs score."""

    name: str
    shops: int
    orders_per_day: int
    window_days: int = DEFAULT_WINDOW_DAYS
    hidden: bool = False  # a test size, not offered in --help
    note: str = ""

    @property
    def days(self) -> int:
        """Days generated: the backfilled window plus the one new day of the nightly run."""
        return self.window_days + 1


SCALES: dict[str, Scale] = {
    "XS": Scale("XS", shops=30, orders_per_day=300, window_days=2, hidden=True, note="tests only"),
    "S": Scale("S", shops=200, orders_per_day=2_000, note="the `make bench` default"),
    "M": Scale(
        "M",
        shops=200_000,
        orders_per_day=1_000_000,
        note="the generator derives ~1.05M items from 200k shops (the issue says 2M)",
    ),
    "L": Scale(
        "L",
        shops=2_000_000,
        orders_per_day=10_000_000,
        note="~10M items; generation takes most of an hour, ~54 GB of logs",
    ),
}


@dataclass(frozen=True)
class Target:
    """One figure of the issue's acceptance list: `metric` compared with `limit`.

    `scenarios` are the runs the figure comes from: if one of them failed (or passed a limit),
    the target failed; if one was not run, the target was not measured.
    """

    scale: str
    id: str
    description: str
    metric: str  # a key of `target_metrics`
    limit: float | bool
    unit: str
    scenarios: tuple[str, ...]
    at_most: bool = True  # value <= limit passes (else value >= limit; booleans must be equal)


TARGETS: tuple[Target, ...] = (
    Target(
        "M",
        "m_nightly_wall",
        "nightly run of one new day",
        "nightly_wall_s",
        15.0,
        "s",
        ("nightly",),
    ),
    Target(
        "M",
        "m_nightly_rss",
        "nightly run peak RSS",
        "nightly_peak_rss_gib",
        3.0,
        "GiB",
        ("nightly",),
    ),
    Target(
        "M",
        "m_backfill_wall",
        "full 30-day backfill",
        "backfill_wall_s",
        300.0,
        "s",
        ("backfill",),
    ),
    Target(
        "M",
        "m_nightly_speedup",
        "nightly at least 5x faster than from scratch",
        "nightly_speedup",
        5.0,
        "x",
        ("nightly", "scratch"),
        at_most=False,
    ),
    Target(
        "M",
        "m_nightly_identical",
        "nightly and from-scratch tables identical",
        "nightly_identical",
        True,
        "",
        ("nightly", "scratch"),
        at_most=False,
    ),
    Target(
        "L",
        "l_nightly_wall",
        "nightly run of one new day",
        "nightly_wall_s",
        120.0,
        "s",
        ("nightly",),
    ),
    Target(
        "L",
        "l_nightly_rss",
        "nightly run completes within the machine",
        "nightly_peak_rss_gib",
        24.0,
        "GiB",
        ("nightly",),
    ),
)


# --------------------------------------------------------------------------------------------
# measuring one child process


@dataclass
class Measurement:
    """One child process: what it cost, and the stage seconds its manifests reported."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    exit_code: int
    killed: str | None = None  # "timeout" or "rss_limit" when the harness stopped it
    stages: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


@dataclass(frozen=True)
class Limits:
    """Guards for each child process. A run past one is killed and reported as failed, so a
    scale the code cannot handle yet ends in a report instead of a machine swapping for hours
    (or a 24 GiB target "met" by the kernel's OOM killer)."""

    max_rss_bytes: int | None = None
    timeout_s: float | None = None


WATCH_INTERVAL_S = 0.2


def _current_rss(pid: int) -> int | None:
    """Resident set size of a live process now (Linux /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _watch(pid: int, limits: Limits, started: float, done: threading.Event, why: list[str]) -> None:
    """Kill `pid` once it passes a limit. Runs beside the blocking `wait4`, so the wall clock of
    a child is not rounded up to a polling step; `done` is set as soon as the child is reaped,
    which keeps the kill from reaching a recycled pid."""
    while not done.wait(WATCH_INTERVAL_S):
        reason = None
        if limits.timeout_s is not None and time.perf_counter() - started > limits.timeout_s:
            reason = "timeout"
        elif limits.max_rss_bytes is not None:
            rss = _current_rss(pid)
            if rss is not None and rss > limits.max_rss_bytes:
                reason = "rss_limit"
        if reason and not done.is_set():
            why.append(reason)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return


def _maxrss_bytes(maxrss: int) -> int:
    """`ru_maxrss` is KiB on Linux and bytes on macOS."""
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def measure(
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
) -> Measurement:
    """Run `command` to completion (or to a limit) and measure it alone.

    `os.wait4` reaps the child and returns its own resource usage, so the peak RSS is the child's
    (the harness process, which may hold generated data, does not count) and CPU time needs no
    before/after bookkeeping. Output goes to `log`, not a pipe, so a chatty child cannot block.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(command),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )
        done, why = threading.Event(), []
        watcher = threading.Thread(
            target=_watch, args=(child.pid, limits, started, done, why), daemon=True
        )
        if limits.max_rss_bytes is not None or limits.timeout_s is not None:
            watcher.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        done.set()
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    return Measurement(
        wall_s=round(wall, 4),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
        peak_rss_bytes=_maxrss_bytes(usage.ru_maxrss),
        exit_code=child.returncode,
        killed=why[0] if why else None,
    )


def failure_text(m: Measurement, log: Path) -> str:
    """Why a child failed, in one line: the limit it passed, or its exit code and last words."""
    if m.killed == "timeout":
        return f"killed after the --timeout of {m.wall_s:.0f} s (log {log})"
    if m.killed == "rss_limit":
        return f"killed past the --max-rss limit at {m.peak_rss_bytes / GIB:.1f} GiB (log {log})"
    tail = log.read_text("utf-8", errors="replace").strip().splitlines()[-3:]
    if m.exit_code < 0:  # killed by a signal the harness did not send
        name = signal.Signals(-m.exit_code).name
        cause = " (most likely the kernel's OOM killer)" if name == "SIGKILL" else ""
        return f"killed by {name}{cause} at {m.peak_rss_bytes / GIB:.1f} GiB (log {log})"
    return f"exit code {m.exit_code} (log {log}): " + " | ".join(tail)


def _require_success(name: str, m: Measurement, log: Path) -> None:
    if not m.ok:
        raise BenchError(f"bench: {name} failed: {failure_text(m, log)}")


class ScenarioFailed(Exception):
    """A benchmarked run failed or passed a limit: recorded, and what depends on it is skipped."""

    def __init__(self, measurement: Measurement, reason: str) -> None:
        super().__init__(reason)
        self.measurement = measurement
        self.reason = reason


# --------------------------------------------------------------------------------------------
# data: generation (reused across invocations) and the window's rows


@dataclass(frozen=True)
class Layout:
    """Where one scale's data and run outputs live under the work folder."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def marker(self) -> Path:
        """Written after a complete generation; its parameters decide whether data is reused."""
        return self.root / "generated.json"

    @property
    def rules(self) -> Path:
        return self.root / "rules.toml"

    def out(self, scenario: str) -> Path:
        return self.root / "runs" / scenario

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


def layout_for(work: Path, scale: Scale, seed: int) -> Layout:
    return Layout(work / f"{scale.name}-seed{seed}")


def generation_params(scale: Scale, seed: int) -> dict[str, Any]:
    return {
        "start": START.isoformat(),
        "days": scale.days,
        "shops": scale.shops,
        "orders_per_day": scale.orders_per_day,
        "seed": seed,
    }


def ensure_data(layout: Layout, scale: Scale, seed: int, echo: Any) -> dict[str, Any]:
    """Generate the raw logs unless a complete generation with the same parameters is there.

    Generation runs in a child process (`expscore generate`) into a side folder that is renamed
    into place, and the marker is written last, so an interrupted generation is never reused.
    """
    params = generation_params(scale, seed)
    if layout.marker.is_file() and layout.raw.is_dir():
        recorded = json.loads(layout.marker.read_text("utf-8"))
        if recorded.get("params") == params:
            return {**recorded, "reused": True}
    partial = layout.root / "raw.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(layout.raw, ignore_errors=True)
    layout.marker.unlink(missing_ok=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    echo(
        f"bench: generating {scale.name} data: {scale.days} days, {scale.shops:,} shops, "
        f"{scale.orders_per_day:,} orders/day into {layout.raw} ..."
    )
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "generate",
        "--out",
        str(partial),
        *[f"--{key.replace('_', '-')}={value}" for key, value in params.items()],
    ]
    log = layout.log("generate")
    m = measure(command, log)
    _require_success("generate", m, log)
    partial.rename(layout.raw)
    recorded = {
        "params": params,
        "seconds": m.wall_s,
        "peak_rss_bytes": m.peak_rss_bytes,
        "raw_bytes": folder_bytes(layout.raw),
        "summary": log.read_text("utf-8").strip().splitlines()[-1:],
    }
    layout.marker.write_text(json.dumps(recorded, indent=2) + "\n", "utf-8")
    echo(f"bench: generated in {m.wall_s:.0f} s, {recorded['raw_bytes'] / GIB:.2f} GiB")
    return {**recorded, "reused": False}


# Disk the harness needs per order a day, measured by the harness at M (1M orders a day, 2026-11-22;
# docs/operators.md): the raw logs per generated day (5.40 GB for 31 days), and the run outputs
# at their peak per day of the window (49.3 GB: the from-scratch run building its state, spill
# included, beside the backfill's and the nightly run's outputs).
RAW_BYTES_PER_ORDER = 175
RUNS_PEAK_BYTES_PER_ORDER = 1_650
DISK_MARGIN = 1.1  # other scales compress a little differently; DuckDB may spill more


@dataclass(frozen=True)
class DiskNeed:
    """What a benchmark at one scale needs on the work folder's disk, and what it has."""

    needed_bytes: int  # at the harness's peak, margin included
    present_bytes: int  # already under the scale's folder: reused or replaced as the runs go
    free_bytes: int

    @property
    def fits(self) -> bool:
        return self.free_bytes + self.present_bytes >= self.needed_bytes


def disk_need(scale: Scale, layout: Layout) -> DiskNeed:
    """The disk `scale` needs against the free space of the disk under `layout`."""
    raw = RAW_BYTES_PER_ORDER * scale.orders_per_day * scale.days
    runs = RUNS_PEAK_BYTES_PER_ORDER * scale.orders_per_day * scale.window_days
    present = folder_bytes(layout.root, links_once=True)
    return DiskNeed(int(DISK_MARGIN * (raw + runs)), present, free_disk_bytes(layout.root))


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk that holds `path`, or would once it is created."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(need: DiskNeed, scale: Scale, layout: Layout) -> None:
    """Refuse a benchmark the disk cannot hold before anything is generated.

    Generating L takes most of an hour; running out of disk after it (or halfway through a
    backfill) loses that hour and can leave a full disk behind.
    """
    if need.fits:
        return
    raise BenchError(
        f"bench: scale {scale.name} needs about {need.needed_bytes / GIB:.0f} GiB of disk under "
        f"{layout.root} at its peak (raw logs and three runs' outputs, estimated from the sizes "
        f"measured at M); the disk has {need.free_bytes / GIB:.0f} GiB free and the folder "
        f"already holds {need.present_bytes / GIB:.0f} GiB. Free space or choose another "
        "--work; --no-disk-check starts anyway"
    )


def folder_bytes(folder: Path, links_once: bool = False) -> int:
    """Bytes of the files under `folder` (disk use of generated data and outputs; 0 if absent).

    By default apparent sizes, as the JSON reports them; `links_once` counts a file hard-linked
    twice once (the nightly output links the backfill's published partitions), which is what
    deleting the folder would free.
    """
    sizes: dict[object, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            sizes[(stat.st_dev, stat.st_ino) if links_once else path] = stat.st_size
    return sum(sizes.values())


def window_dates(last: dt.date, days: int) -> list[dt.date]:
    return [last - dt.timedelta(days=days - 1 - i) for i in range(days)]


def window_files(raw: Path, dates: Sequence[dt.date]) -> dict[str, list[Path]]:
    """The raw Parquet files of `dates`, per log (the partitions a run of the last date reads)."""
    return {
        log: sorted(p for d in dates for p in (raw / log / f"dt={d.isoformat()}").glob("*.parquet"))
        for log in LOGS
    }


def window_rows(files: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    """Rows per log, from the Parquet footers: the input size, whatever a run re-reads."""
    return {log: sum(pq.read_metadata(p).num_rows for p in paths) for log, paths in files.items()}


def rules_file(layout: Layout, scale: Scale) -> Path | None:
    """The shipped rules, or a copy with the scale's window length (the hidden test scale)."""
    if scale.window_days == DEFAULT_WINDOW_DAYS:
        return None
    text = resources.files("pipelines.config").joinpath("rules.default.toml").read_text("utf-8")
    text, n = re.subn(r"(?m)^window_days\s*=\s*\d+", f"window_days = {scale.window_days}", text)
    if n != 1:
        raise BenchError("bench: cannot set window_days in the shipped rules file")
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.rules.write_text(text, "utf-8")
    return layout.rules


# --------------------------------------------------------------------------------------------
# the scenarios


FLOOR_SCRIPT = """
import json, sys, time
import duckdb
queries = json.loads(open(sys.argv[1], encoding="utf-8").read())
con = duckdb.connect()
con.sql("SET enable_progress_bar = false")
started = time.perf_counter()
logs = {}
for log, sql in queries.items():
    t = time.perf_counter()
    rows, digest = con.sql(sql).fetchall()[0]
    logs[log] = {"rows": rows, "digest": str(digest), "seconds": time.perf_counter() - t}
print(json.dumps({"seconds": time.perf_counter() - started, "logs": logs}))
"""


def floor_queries(files: Mapping[str, Sequence[Path]]) -> dict[str, str]:
    """Per log, one query that decodes every spec column of every file once.

    The spec's columns are what any run must read: each is validated, and a rejected row is kept
    whole in the quarantine. `sum(hash(...))` forces DuckDB to decode each value (a bare
    `count(*)` would be answered from the footers); `union_by_name` absorbs the files' allowed
    variations (column order, integer widths, naive timestamps, extra columns).
    """
    queries = {}
    for log, paths in files.items():
        if not paths:
            continue
        columns = column_list(LOGS[log].column_names)
        listing = ", ".join(sql_literal(str(p)) for p in paths)
        queries[log] = (
            f"SELECT count(*), sum(hash({columns})) "
            f"FROM read_parquet([{listing}], union_by_name = true)"
        )
    return queries


def run_floor(
    layout: Layout,
    files: Mapping[str, Sequence[Path]],
    tag: str,
    limits: Limits = Limits(),
    name: str = "floor",
) -> Measurement:
    """The read-once floor, in a child process like the scenarios it is compared with."""
    spec = layout.root / f"{name}-queries.json"
    spec.write_text(json.dumps(floor_queries(files)), "utf-8")
    log = layout.log(f"{name}-{tag}")
    m = measure([sys.executable, "-c", FLOOR_SCRIPT, str(spec)], log, limits=limits)
    _require_success(name, m, log)
    lines = log.read_text("utf-8").strip().splitlines()
    result = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    m.stages = {"query": round(result["seconds"], 4)}
    m.extra = {"logs": result["logs"]}
    return m


def _run_command(
    verb: str, raw: Path, out: Path, rules: Path | None, dates: Sequence[str]
) -> list[str]:
    command = [sys.executable, "-m", "pipelines", verb, *dates, "--raw", str(raw)]
    command += ["--out", str(out), "--force"]
    return command + (["--rules", str(rules)] if rules else [])


def manifest_stages(
    out: Path, dates: Sequence[dt.date], strict: bool = True
) -> tuple[dict[str, float], list[dict]]:
    """Stage seconds summed over the dates' manifests, and each date's own (with its status).

    `strict=False` skips dates without a manifest: how far a failed backfill got, and how long
    its days took, is worth reporting too.
    """
    totals: dict[str, float] = {}
    per_day = []
    for day in dates:
        path = out / "manifests" / f"dt={day.isoformat()}.json"
        if not path.is_file():
            if not strict:
                continue
            raise BenchError(f"bench: no manifest {path}: the run did not publish {day}")
        manifest = json.loads(path.read_text("utf-8"))
        timings = {k: float(v) for k, v in manifest.get("timings_seconds", {}).items()}
        for stage, seconds in timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
        per_day.append({"date": day.isoformat(), "status": manifest.get("status"), **timings})
    return {k: round(v, 4) for k, v in totals.items()}, per_day


def run_scenario(
    name: str,
    verb_args: list[str],
    layout: Layout,
    out: Path,
    rules: Path | None,
    dates: Sequence[dt.date],
    tag: str,
    limits: Limits = Limits(),
) -> Measurement:
    """One `expscore run|backfill` in a child process, with its manifests' stage times.

    Raises `ScenarioFailed` when the run fails or passes a limit."""
    command = _run_command(verb_args[0], layout.raw, out, rules, verb_args[1:])
    log = layout.log(f"{name}-{tag}")
    m = measure(command, log, env={"EXPSCORE_LOG_FORMAT": "plain"}, limits=limits)
    if not m.ok:
        m.extra = {"per_day_published": manifest_stages(out, dates, strict=False)[1]}
        raise ScenarioFailed(m, failure_text(m, log))
    m.stages, per_day = manifest_stages(out, dates)
    m.extra = {"statuses": sorted({d["status"] for d in per_day}), "per_day": per_day}
    return m


def copy_output(source: Path, target: Path) -> None:
    """A private copy of an output folder for one run to change.

    Files of published partitions (`<table>/dt=D/`) are hard-linked: a run never writes into a
    published partition, it writes a new one aside and swaps it in (pipelines/publish.py), so
    the source keeps its files. Everything else (manifests, the lock, any state a run keeps) is
    copied, since a run may change it in place. At M the backfill's output is ~20 GB, which a
    plain copy would duplicate for every repeat.
    """

    def link_or_copy(src: str, dst: str) -> str:
        parts = Path(src).relative_to(source).parts
        if len(parts) >= 3 and parts[0] in PUBLISHED_TABLES and parts[1].startswith("dt="):
            with contextlib.suppress(OSError):
                os.link(src, dst)
                return dst
        return shutil.copy2(src, dst)

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=link_or_copy)


def seed_from_scratch(source: Path, target: Path, previous: dt.date) -> None:
    """A fresh output folder with only the previous day's published tables.

    By the spec a day depends on the raw window and on D-1's labels and weights (hysteresis, the
    weight clamp), and its band gate on D-1's scores; everything else a run may keep under its
    output folder is deliberately left out, so the run must rebuild it.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for table in TABLE_SCHEMAS:
        partition = source / table / f"dt={previous.isoformat()}"
        if partition.is_dir():
            shutil.copytree(partition, target / table / partition.name, copy_function=shutil.copy2)
    # the manifest is what makes those tables a published day (pipelines/run.py)
    manifest = manifest_path(source, previous)
    if manifest.is_file():
        manifest_path(target, previous).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest, manifest_path(target, previous))


def compare_outputs(a: Path, b: Path, day: dt.date) -> dict[str, Any]:
    """Are the published tables of `day` identical in `a` and `b`? Per table, as sets of rows.

    Row order carries no meaning in a partition, so both sides are sorted on every column first;
    types and values must then match exactly (floats bit for bit).
    """
    tables: dict[str, Any] = {}
    for table in PUBLISHED_TABLES:
        # `dt` from the folder name, as every reader gets it (the files hold no `dt`)
        left, right = (scan_day(root, table, day).collect() for root in (a, b))
        present = {bool(partition_files(root, table, day)) for root in (a, b)}
        same_schema = left.schema == right.schema and len(present) == 1
        identical = (
            same_schema
            and left.height == right.height
            and (
                left.height == 0
                or left.sort(left.columns, nulls_last=True).equals(
                    right.sort(right.columns, nulls_last=True), null_equal=True
                )
            )
        )
        tables[table] = {
            "identical": bool(identical),
            "rows": [left.height, right.height],
            "same_schema": same_schema,
        }
    return {"identical": all(t["identical"] for t in tables.values()), "tables": tables}


# --------------------------------------------------------------------------------------------
# summarising


def _median(values: Sequence[float]) -> float:
    return round(float(statistics.median(values)), 4)


def _stage_names(runs: Sequence[Measurement]) -> list[str]:
    names = {s for m in runs for s in m.stages}
    return [s for s in STAGE_ORDER if s in names] + sorted(names - set(STAGE_ORDER))


def summarise(
    runs: Sequence[Measurement],
    rows: int,
    floor_s: float | None,
    description: str,
    failure: str | None = None,
) -> dict[str, Any]:
    """Medians over the repeats, throughput and ratios to the floor; the raw runs stay too.

    A failed scenario gets no medians (a figure from the repeats that happened to pass would
    flatter it): its `failed` reason and its runs, the failing one included, say what happened.
    """
    summary: dict[str, Any] = {"description": description, "rows": rows, "failed": failure}
    if failure is not None or not runs:
        return {**summary, "runs": [asdict(m) for m in runs]}
    wall = _median([m.wall_s for m in runs])
    stages = {}
    for stage in _stage_names(runs):
        seconds = _median([m.stages.get(stage, 0.0) for m in runs])
        stages[stage] = {
            "seconds": seconds,
            "rows_per_s": round(rows / seconds) if seconds > 0 else None,
            "ratio_to_floor": round(seconds / floor_s, 2) if floor_s else None,
        }
    return {
        **summary,
        "wall_s": wall,
        "cpu_s": _median([m.cpu_s for m in runs]),
        "peak_rss_bytes": int(statistics.median([m.peak_rss_bytes for m in runs])),
        "rows_per_s": round(rows / wall) if wall > 0 else None,
        "ratio_to_floor": round(wall / floor_s, 2) if floor_s else None,
        "stages": stages,
        # wall time outside the timed stages: interpreter start, imports, rules, lock, manifest
        "other_s": _median([m.wall_s - sum(m.stages.values()) for m in runs]),
        "runs": [asdict(m) for m in runs],
    }


def target_metrics(result: Mapping[str, Any]) -> dict[str, float | bool | None]:
    scenarios = result["scenarios"]

    def get(scenario: str, key: str) -> Any:
        return scenarios.get(scenario, {}).get(key)

    rss = get("nightly", "peak_rss_bytes")
    return {
        "nightly_wall_s": get("nightly", "wall_s"),
        "nightly_peak_rss_gib": None if rss is None else round(rss / GIB, 3),
        "backfill_wall_s": get("backfill", "wall_s"),
        "nightly_speedup": result["nightly_vs_scratch"].get("speedup"),
        "nightly_identical": result["nightly_vs_scratch"].get("identical"),
    }


def evaluate_targets(scale: str, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for this scale, each with the measured value and pass/fail.

    `passed` is false when the figure misses its limit or a run it comes from failed (killed
    past the memory limit, say), and null when such a run was skipped or not measured.
    """
    metrics = target_metrics(result)
    evaluated = []
    for target in TARGETS:
        if target.scale != scale:
            continue
        sources = [result["scenarios"].get(name) for name in target.scenarios]
        value = metrics[target.metric]
        if any(s is not None and s.get("failed") for s in sources):
            passed: bool | None = False
        elif value is None or any(s is None or s.get("skipped") for s in sources):
            passed = None
        elif isinstance(target.limit, bool):
            passed = value == target.limit
        else:
            passed = value <= target.limit if target.at_most else value >= target.limit
        evaluated.append({**asdict(target), "value": value, "passed": passed})
    return evaluated


def machine_memory() -> int | None:
    """The machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_bytes": machine_memory(),
        **machine_load(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: importlib.metadata.version(name) for name in ("polars", "duckdb", "pyarrow")
        },
        "git": _git_state(),
    }


def machine_load() -> dict[str, Any]:
    """How busy the machine is now: other work on it skews every figure, so the result records
    this at the start and at the end of a benchmark (see `busy_warning`)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    available = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo.read_text(), re.MULTILINE)
        available = int(match.group(1)) * 1024 if match else None
    return {"load_average": load, "memory_available_bytes": available, "cpus_busy": cpus_busy()}


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, from /proc/stat (Linux only)."""
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None
    fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user .. steal; guest time is already counted in user
    return total - idle, total


def cpus_busy(seconds: float = 1.0) -> float | None:
    """How many CPUs the machine keeps busy over the next `seconds`, whoever runs on them.

    The end of a benchmark needs this rather than the load average: the one-minute average
    still counts the benchmark's own last runs, so it reads "busy" on an otherwise idle machine.
    """
    before = _cpu_jiffies()
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_jiffies()
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return round(share * (os.cpu_count() or 1), 2)


def _git_state() -> dict[str, Any] | None:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


# --------------------------------------------------------------------------------------------
# the benchmark


def run_bench(
    scale: Scale,
    work: Path,
    repeats: int = 3,
    backfill_repeats: int | None = None,
    seed: int = DEFAULT_SEED,
    echo: Any = print,
    limits: Limits = Limits(),
    disk_check: bool = True,
) -> dict[str, Any]:
    """Generate (or reuse) the data, measure every scenario `repeats` times, return the result.

    First, unless `disk_check` is off, refuse a scale the work folder's disk cannot hold.

    Each repeat starts the nightly run from a fresh copy of the backfill's output, so every
    repeat measures the same step even when a run keeps state under `--out`. `backfill_repeats`
    (default `repeats`) may be lower, since a backfill at M takes many times a nightly run; 0
    reuses the backfill output left by an earlier invocation.

    A run that fails or passes a limit is recorded as failed and not repeated; the nightly and
    from-scratch runs are skipped when there is no backfill to start from.
    """
    backfill_repeats = repeats if backfill_repeats is None else backfill_repeats
    if repeats < 1 or backfill_repeats < 0:
        raise InputError("bench: --repeats must be at least 1 and --backfill-repeats at least 0")
    work = work.resolve()
    load_at_start = machine_load()
    layout = layout_for(work, scale, seed)
    disk = disk_need(scale, layout)
    if disk_check:
        check_disk(disk, scale, layout)
    generation = ensure_data(layout, scale, seed, echo)
    rules = rules_file(layout, scale)

    backfill_dates = window_dates(
        START + dt.timedelta(days=scale.window_days - 1), scale.window_days
    )
    nightly_date = START + dt.timedelta(days=scale.window_days)
    nightly_window = window_dates(nightly_date, scale.window_days)
    nightly_files = window_files(layout.raw, nightly_window)
    nightly_rows = window_rows(nightly_files)
    backfill_rows = window_rows(window_files(layout.raw, backfill_dates))
    backfill_args = [
        "backfill",
        f"--start={backfill_dates[0].isoformat()}",
        f"--end={backfill_dates[-1].isoformat()}",
    ]
    nightly_args = ["run", f"--date={nightly_date.isoformat()}"]

    day_files = window_files(layout.raw, [nightly_date])
    day_rows = window_rows(day_files)
    runs: dict[str, list[Measurement]] = {name: [] for name in SCENARIOS}
    backfill_out, nightly_out, scratch_out = (layout.out(s) for s in RUN_SCENARIOS)
    if (
        backfill_repeats == 0
        and not (backfill_out / "manifests" / f"dt={backfill_dates[-1].isoformat()}.json").is_file()
    ):
        raise InputError(f"bench: --backfill-repeats 0 needs an earlier backfill in {backfill_out}")
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def attempt(name: str, verb_args: list[str], out: Path, dates: list[dt.date], tag: str) -> None:
        try:
            runs[name].append(run_scenario(name, verb_args, layout, out, rules, dates, tag, limits))
        except ScenarioFailed as exc:
            runs[name].append(exc.measurement)
            failures[name] = exc.reason
            echo(f"bench: {name} FAILED: {exc.reason}")

    for i in range(repeats):
        tag = f"{i + 1}"
        echo(f"bench: repeat {tag}/{repeats}: floor ...")
        runs["floor"].append(run_floor(layout, nightly_files, tag, limits))
        runs["floor_day"].append(run_floor(layout, day_files, tag, limits, name="floor_day"))
        if i < backfill_repeats and "backfill" not in failures:
            echo(f"bench: repeat {tag}/{repeats}: backfill of {len(backfill_dates)} days ...")
            shutil.rmtree(backfill_out, ignore_errors=True)
            attempt("backfill", backfill_args, backfill_out, backfill_dates, tag)
        if "backfill" in failures:
            for name in ("nightly", "scratch"):
                skipped[name] = "needs the backfill's output, and the backfill failed"
            continue
        if "nightly" not in failures:
            echo(f"bench: repeat {tag}/{repeats}: nightly run of {nightly_date} ...")
            copy_output(backfill_out, nightly_out)
            attempt("nightly", nightly_args, nightly_out, [nightly_date], tag)
        if "scratch" not in failures:
            echo(f"bench: repeat {tag}/{repeats}: from-scratch run of {nightly_date} ...")
            seed_from_scratch(backfill_out, scratch_out, nightly_date - dt.timedelta(days=1))
            attempt("scratch", nightly_args, scratch_out, [nightly_date], tag)

    floor_s = _median([m.stages["query"] for m in runs["floor"]])
    total_nightly_rows = sum(nightly_rows.values())
    descriptions = {
        "floor": "DuckDB reads every spec column of the nightly window's raw files once",
        "floor_day": f"the same for the raw files of {nightly_date} alone",
        "backfill": f"expscore backfill {backfill_dates[0]}..{backfill_dates[-1]} into an empty "
        "output",
        "nightly": f"expscore run --date {nightly_date} on top of the backfill's output",
        "scratch": f"expscore run --date {nightly_date} into an output holding only the "
        f"published tables of {nightly_date - dt.timedelta(days=1)}",
    }
    scenarios: dict[str, dict[str, Any]] = {}
    for name, measured in runs.items():
        if name in skipped and not measured:
            scenarios[name] = {"description": descriptions[name], "skipped": skipped[name]}
            continue
        rows = {"backfill": sum(backfill_rows.values()), "floor_day": sum(day_rows.values())}.get(
            name, total_nightly_rows
        )
        summary = summarise(measured, rows, floor_s, descriptions[name], failures.get(name))
        passed = [m for m in measured if m.ok and "statuses" in m.extra]
        if passed:
            summary["statuses"] = sorted({s for m in passed for s in m.extra["statuses"]})
        if name == "backfill" and passed:
            summary["per_day_last_repeat"] = passed[-1].extra["per_day"]
        if name in failures:  # how far the failed run got (dates it published before failing)
            summary["per_day_published"] = measured[-1].extra.get("per_day_published", [])
        scenarios[name] = summary
    scenarios["floor"]["query_s"] = floor_s
    scenarios["floor_day"]["query_s"] = _median([m.stages["query"] for m in runs["floor_day"]])
    nightly_wall = scenarios["nightly"].get("wall_s")
    scratch_wall = scenarios["scratch"].get("wall_s")
    if nightly_wall and scratch_wall:
        echo("bench: comparing the nightly and from-scratch tables ...")
        identity = compare_outputs(nightly_out, scratch_out, nightly_date)
        speedup: float | None = round(scratch_wall / nightly_wall, 3)
    else:
        identity, speedup = {"identical": None, "tables": {}}, None
    result: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "at_start": load_at_start},
        "scale": {
            **asdict(scale),
            "days_generated": scale.days,
            "start": START.isoformat(),
            "seed": seed,
            "raw_bytes": generation.get("raw_bytes"),
            "generation_seconds": generation.get("seconds"),
            "generation_reused": generation.get("reused"),
        },
        "work": str(layout.root),
        "repeats": repeats,
        "backfill_repeats": backfill_repeats,
        "floor_seconds": floor_s,
        "floor_basis": "in-process DuckDB query time of the floor (median); every ratio_to_floor "
        "divides by it",
        "window": {
            "backfill": [backfill_dates[0].isoformat(), backfill_dates[-1].isoformat()],
            "nightly_date": nightly_date.isoformat(),
            "nightly_window": [nightly_window[0].isoformat(), nightly_window[-1].isoformat()],
            "rows": nightly_rows,
            "rows_total": total_nightly_rows,
            "new_day_rows": day_rows,
            "backfill_rows_total": sum(backfill_rows.values()),
        },
        "scenarios": scenarios,
        "nightly_vs_scratch": {"speedup": speedup, **identity},
        "limits": asdict(limits),
        "disk_bytes": {
            "raw": generation.get("raw_bytes"),
            **{name: folder_bytes(layout.out(name)) for name in RUN_SCENARIOS},
        },
        "disk_at_start": {**asdict(disk), "checked": disk_check},
    }
    result["notes"] = [
        "every run passes --force so that a gate tripped by synthetic data cannot stop the "
        "backfill; the gates are still evaluated (see each scenario's statuses)",
        "scratch starts from the previous day's published tables only: into a truly empty output "
        "the labels (hysteresis) and shop weights (daily clamp) of the date would differ by spec",
        "rows and rows_per_s count the raw rows of the scenario's window from Parquet footers",
        "disk_bytes are apparent sizes: the nightly output hard-links the backfill's published "
        "partitions (a run replaces a partition, never writes into one)",
        *([scale.note] if scale.note else []),
    ]
    result["targets"] = evaluate_targets(scale.name, result)
    return result


# --------------------------------------------------------------------------------------------
# the short table


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def _fmt_rate(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r / 1e6:.2f}M/s" if r >= 1e6 else f"{r / 1e3:.1f}k/s"


def busy_warning(machine: Mapping[str, Any]) -> str | None:
    """A warning when other work competed for the machine, or less than half its memory was
    available, at the start or the end of the run.

    At the start, a load average above the usable CPUs (work that ran in the minute before);
    at the end, more than `OTHER_WORK_CPUS` CPUs busy while the harness waits, since the load
    average then still counts the harness's own last runs.
    """
    cpus = machine.get("cpus_usable") or 1
    total = machine.get("memory_bytes")
    for when, state in (("start", machine.get("at_start", {})), ("end", machine)):
        load = (state.get("load_average") or [0.0])[0]
        busy = state.get("cpus_busy")
        available = state.get("memory_available_bytes")
        low_memory = bool(total and available is not None and available < total / 2)
        loaded = load > cpus if when == "start" else (busy or 0.0) > OTHER_WORK_CPUS
        if loaded or low_memory:
            what = f"load {load:.1f}" if when == "start" else f"{busy or 0.0:.1f} CPUs busy"
            return (
                f"WARNING: the machine was busy at the {when} ({what} on {cpus} CPUs, "
                f"{_fmt_bytes(available)} memory available): the figures are not representative"
            )
    return None


def format_table(result: Mapping[str, Any]) -> str:
    """A few lines a person reads: one row per scenario, stage seconds with their x-floor ratio."""
    scale, machine, window = result["scale"], result["machine"], result["window"]
    scenarios = result["scenarios"]
    seen = {s for sc in scenarios.values() for s in sc.get("stages", {})} - {"query"}
    stages = [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))
    memory = machine["memory_bytes"]
    lines = [
        f"expscore bench {scale['name']}: {scale['shops']:,} shops, "
        f"{scale['orders_per_day']:,} orders/day, window {scale['window_days']} days, "
        f"seed {scale['seed']}; median of {result['repeats']} on {machine['cpus_usable']} CPUs, "
        f"{_fmt_bytes(memory)}",
        f"nightly window {window['nightly_window'][0]}..{window['nightly_window'][1]}: "
        f"{window['rows_total']:,} raw rows ("
        + ", ".join(f"{log} {n:,}" for log, n in window["rows"].items())
        + ")",
        "",
    ]
    header = f"{'scenario':<9} {'wall s':>8} {'cpu s':>8} {'peak RSS':>10} {'rows/s':>9} "
    header += f"{'x floor':>8}" + "".join(f" {s + ' s (x floor)':>20}" for s in stages)
    header += f" {'other s':>8}"
    lines.append(header)
    for name in SCENARIOS:
        if name not in scenarios:
            continue
        sc = scenarios[name]
        if sc.get("skipped"):
            lines.append(f"{name:<9} skipped: {sc['skipped']}")
            continue
        if sc.get("failed"):
            last = sc["runs"][-1]
            done = len(sc.get("per_day_published", []))
            lines.append(
                f"{name:<9} FAILED after {last['wall_s']:.0f} s at "
                f"{_fmt_bytes(last['peak_rss_bytes'])} ({done} dates published): {sc['failed']}"
            )
            continue
        row = (
            f"{name:<9} {sc['wall_s']:>8.2f} {sc['cpu_s']:>8.2f} "
            f"{_fmt_bytes(sc['peak_rss_bytes']):>10} {_fmt_rate(sc['rows_per_s']):>9} "
            f"{sc['ratio_to_floor']:>7.1f}x"
        )
        for stage in stages:
            st = sc["stages"].get(stage)
            cell = "-" if st is None else f"{st['seconds']:.2f} ({st['ratio_to_floor']:.1f}x)"
            row += f" {cell:>20}"
        lines.append(row + f" {sc['other_s']:>8.2f}")
    floor = scenarios["floor"]
    comparison = result["nightly_vs_scratch"]
    differing = [t for t, v in comparison["tables"].items() if not v["identical"]]
    if comparison["speedup"] is None:
        verdict = "nightly vs from scratch: not compared (a run failed or was skipped)"
    else:
        verdict = (
            f"nightly vs from scratch: {comparison['speedup']:.2f}x faster; tables identical: "
            + ("yes" if comparison["identical"] else "NO (" + ", ".join(differing) + ")")
        )
    lines += [
        "",
        f"floor: DuckDB query {floor['query_s']:.2f} s (process {floor['wall_s']:.2f} s), "
        f"{scenarios['floor_day']['query_s']:.2f} s for the new day alone (floor_day); "
        "x floor = seconds / floor query seconds; other = wall outside the manifest's stages "
        "(process start, imports, lock, manifest)",
        verdict,
    ]
    busy = busy_warning(machine)
    if busy:
        lines.append(busy)
    if result["targets"]:
        lines.append(f"targets ({scale['name']}):")
        for t in result["targets"]:
            verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["passed"]]
            if isinstance(t["limit"], bool):
                figure = f"{t['value']}"
                limit = "must be true"
            else:
                figure = "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
                limit = f"{'<=' if t['at_most'] else '>='} {t['limit']:g} {t['unit']}"
            lines.append(f"  {verdict:<4} {t['description']}: {figure} ({limit})")
    else:
        lines.append(f"targets: none at scale {scale['name']} (the issue sets them for M and L)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the command


def _scale(value: str) -> str:
    name = value.strip().upper()
    if name not in SCALES:
        visible = "|".join(s for s, sc in SCALES.items() if not sc.hidden)
        raise typer.BadParameter(f"{value!r} is not a scale; use {visible}")
    return name


def bench(
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            callback=_scale,
            help="S: 200 shops, 2k orders/day. M: 200k shops, 1M orders/day (generation ~5 min, "
            "5.4 GB of logs, ~56 GiB of disk at the peak). L: 2M shops, 10M orders/day "
            "(generation ~1 h, ~560 GiB of disk). Each: a 30-day window + 1 new day.",
        ),
    ] = "S",
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Runs of each scenario; medians are reported.")
    ] = 3,
    backfill_repeats: Annotated[
        int | None,
        typer.Option(
            "--backfill-repeats",
            min=0,
            help="Backfill runs (default: --repeats); 0 reuses the backfill output of an earlier "
            "invocation (only valid if the code has not changed since).",
        ),
    ] = None,
    work: Annotated[
        Path,
        typer.Option(
            "--work",
            help="Generated data and run outputs (reused: data is generated once per scale/seed).",
        ),
    ] = Path(".bench"),
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Where the JSON result goes (default <work>/bench-<scale>.json)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = DEFAULT_SEED,
    max_rss_gib: Annotated[
        float | None,
        typer.Option(
            "--max-rss-gib",
            min=0.1,
            help="Kill a run whose RSS passes this and report it failed (default: 90% of RAM).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Kill a run after this many seconds (failed)."),
    ] = None,
    disk_check: Annotated[
        bool,
        typer.Option(
            "--disk-check/--no-disk-check",
            help="Refuse to start when the disk under --work looks too small for the scale "
            "(estimated from the sizes measured at M).",
        ),
    ] = True,
    log_format: LogFormatOption = None,
) -> None:
    """Time a full backfill and a nightly run against the floor of reading the input once.

    Every scenario runs in its own process (wall, CPU, peak RSS of that process); stage times
    come from the run manifests. Prints a short table and writes a JSON result. Not a test: CI
    does not run it.
    """
    use_log_format(log_format)
    chosen = SCALES[scale]

    def echo(message: str) -> None:
        typer.echo(message, err=True)

    memory = machine_memory()
    max_rss = max_rss_gib * GIB if max_rss_gib else (0.9 * memory if memory else None)
    limits = Limits(None if max_rss is None else int(max_rss), timeout)
    result = run_bench(chosen, work, repeats, backfill_repeats, seed, echo, limits, disk_check)
    target = json_path or work / f"bench-{chosen.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    typer.echo(format_table(result))
    typer.echo(f"JSON: {target}")


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the `expscore` app."""
    app.command("bench")(bench)
