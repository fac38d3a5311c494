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

Scenarios, each repeated and reported as medians (issue 19's targets, `TARGETS`, are checked
against them):

1. `floor`    one DuckDB query per log reading, once, every spec column of the nightly window's
              raw files (`count(*)` and `sum(hash(...))`, so the values are decoded, not only the
              footers): the time no implementation of the run can beat; `floor_day` reads the
              new day's files only, the floor of a nightly run that keeps state for the rest;
2. `backfill` a full backfill of the window's dates into an empty output folder;
3. `nightly`  the run of the day after the window on top of (a copy of) that backfill's output;
              the size of its window state on disk (`<out>/.state`) after the night is recorded;
4. `scratch`  the same date from scratch: a fresh output folder holding only the previous day's
              published tables (the labels and weights a day carries over by the spec, and the
              scores its band gate compares with), nothing else a run may have kept;
5. `ray`      the nightly run again on another copy of the backfill's output, its shard tasks
              on a local Ray (`--executor ray --ray-address local`); its tables must be those
              of `nightly`;
6. `peer`     a plain DuckDB SQL recompute of the nightly date from the raw logs of its window
              (`pipelines/devtools/bench_peer.py`: the spec's definitions, no state, no
              expscore code);
              its tables are compared with what `nightly` published, and the agreement goes
              into the JSON;
7. `window<W>_prep`, `window<W>_nightly` for each W of `--window-days` (default the scale's
              window and twice it): the nightly run of one date (the same date for every W,
              the day after the longest window's data) under `window_days = W`, on the output
              of a short backfill of the dates before it (a from-scratch first date, then
              `WINDOW_WARMUP_NIGHTS` nights, so that the state has the shape nights give it);
              each W's figures are divided by those of the smallest W.

`nightly` and `scratch` must publish identical tables; the harness compares every table of that
date and records the outcome. Runs pass `--force`: a quality gate tripped by synthetic data would
otherwise stop a backfill, while the work done is the same either way (the gates are evaluated and
the manifest's status says "forced"). `--skip` leaves out any of backfill, nightly, scratch, ray,
peer and window (what depends on a skipped run is skipped too); the JSON says what was skipped
and why, and a target whose runs were skipped is "not measured".

Each child is guarded (`--max-rss-gib`, default 90% of the machine's memory, and `--timeout`):
one that passes a limit is killed and reported as failed, with how far it got, instead of
driving a shared machine into swapping; what depends on it (nightly and from-scratch need the
backfill) is reported as skipped, and the targets it feeds fail.

Generated data is kept under `--work` and reused when the same scale and seed were generated
before with at least the days needed (generation of M takes minutes, L most of an hour); the
generator is deterministic day by day, so the first 31 of 61 generated days are the 31 days a
31-day generation writes. The outputs of `ray` and of the window runs are deleted once measured
(their sizes stay in the JSON): at M each holds a window state of several GB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import json
import math
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from pipelines.config import MAX_SHARDS, ORDERS_PER_SHARD
from pipelines.devtools import bench_peer
from pipelines.errors import ExpscoreError, InputError
from pipelines.ingest.load import column_list, sql_literal
from pipelines.layout import default_state_location, manifest_path, partition_dir, raw_partition
from pipelines.published import partition_files, scan_day
from scoring.contract import LOGS, PUBLISHED_TABLES, TABLE_SCHEMAS

GIB = 1024**3
MIB = 1024**2
START = dt.date(2026, 1, 1)
DEFAULT_SEED = 7
DEFAULT_WINDOW_DAYS = 30  # the shipped rules' window; other windows get a rules file of their own
JSON_SCHEMA_VERSION = 2  # 2: issue 19's targets, ray, peer, window runs, state size, --skip
OTHER_WORK_CPUS = 0.5  # CPUs busy at the end of a benchmark, beyond which other work competed
SCENARIOS = ("floor", "floor_day", "backfill", "nightly", "scratch", "ray", "peer")
RUN_SCENARIOS = ("backfill", "nightly", "scratch")  # the expscore runs whose outputs are kept
SKIPPABLE = ("backfill", "nightly", "scratch", "ray", "peer", "window")
# Nights a window run's output has behind it: a backfill of WINDOW_WARMUP_NIGHTS + 1 dates into
# an empty output (the first date from scratch) before the measured night. A state's order files
# take a delta per night and are compacted past 4 (pipelines/state/shard.py), so three nights
# give it the shape of a long-running state without a backfill of the whole window.
WINDOW_WARMUP_NIGHTS = 3
RAY_ARGS = ("--executor", "ray", "--ray-address", "local")  # a new local Ray, whatever RAY_ADDRESS
STAGE_ORDER = ("state", "score", "publish")  # known stages first; others follow by name


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
    "mid": Scale(
        "mid",
        shops=20_000,
        orders_per_day=100_000,
        note="issue 19's mid scale, where expscore is measured against the SQL peer",
    ),
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


# Issue 19's targets ("Targets (the benchmark harness, medians of 3, 2 cores; not tests)"). The
# issue's last item, projecting L on 8 and 32 workers from measured shard costs, is on paper
# (docs/operators.md), not a harness figure.
TARGETS: tuple[Target, ...] = (
    Target("M", "m_nightly_wall", "nightly run", "nightly_wall_s", 10.0, "s", ("nightly",)),
    Target(
        "M", "m_nightly_rss", "nightly peak RSS", "nightly_peak_rss_gib", 3.0, "GiB", ("nightly",)
    ),
    Target("M", "m_scratch_wall", "from-scratch run", "scratch_wall_s", 60.0, "s", ("scratch",)),
    Target(
        "M",
        "m_scratch_rss",
        "from-scratch peak RSS",
        "scratch_peak_rss_gib",
        8.0,
        "GiB",
        ("scratch",),
    ),
    Target("M", "m_backfill_wall", "30-day backfill", "backfill_wall_s", 300.0, "s", ("backfill",)),
    Target(
        "M",
        "m_state_disk",
        "window state on disk after the night",
        "nightly_state_gb",
        4.0,
        "GB",
        ("nightly",),
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
        "M",
        "m_window60_ratio",
        "nightly with window_days 60 / with 30",
        "window_60_to_30",
        1.3,
        "x",
        ("window30_nightly", "window60_nightly"),
    ),
    Target(
        "M", "m_ray_ratio", "nightly on Ray / local", "ray_to_local", 1.3, "x", ("ray", "nightly")
    ),
    Target(
        "M",
        "m_ray_identical",
        "Ray and local nightly tables identical",
        "ray_identical",
        True,
        "",
        ("ray", "nightly"),
        at_most=False,
    ),
    Target(
        "mid",
        "mid_nightly_vs_peer",
        "nightly / SQL peer",
        "nightly_to_peer",
        round(1 / 6, 4),
        "x",
        ("nightly", "peer"),
    ),
    Target(
        "mid",
        "mid_scratch_vs_peer",
        "from scratch / SQL peer",
        "scratch_to_peer",
        1.0,
        "x",
        ("scratch", "peer"),
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
    # the largest summed RSS of the child and its descendants, sampled every WATCH_INTERVAL_S
    # (Linux): what a run with worker processes (Ray, a process pool) holds, which
    # `peak_rss_bytes` (the child's own, exact) does not see; shared pages count in each process
    peak_tree_rss_bytes: int | None = None
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


def default_limits(max_rss_gib: float | None, timeout_s: float | None) -> Limits:
    """The guards of `expscore bench`: `--max-rss-gib` (default 90% of the machine's memory, none
    where the platform does not say it) and `--timeout`."""
    memory = machine_memory()
    max_rss = max_rss_gib * GIB if max_rss_gib else (0.9 * memory if memory else None)
    return Limits(None if max_rss is None else int(max_rss), timeout_s)


WATCH_INTERVAL_S = 0.2


def _current_rss(pid: int) -> int | None:
    """Resident set size of a live process now (Linux /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _tree_rss(pid: int) -> int | None:
    """Summed RSS of a live process and all its descendants now (Linux /proc; None elsewhere)."""
    total, seen, stack = 0, set(), [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        rss = _current_rss(current)
        if rss is None:
            if current == pid:
                return None
            continue
        total += rss
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                stack.extend(int(child) for child in children.read_text().split())
    return total


@dataclass
class Watch:
    """What the watcher thread found: why it killed the child, the largest tree RSS it saw."""

    killed: str | None = None
    peak_tree_rss: int | None = None


def _watch(pid: int, limits: Limits, started: float, done: threading.Event, seen: Watch) -> None:
    """Sample the RSS of `pid`'s process tree and kill the tree once it passes a limit. Runs
    beside the blocking `wait4`, so the wall clock of a child is not rounded up to a polling
    step; `done` is set as soon as the child is reaped, which keeps the kill from reaching a
    recycled pid. The memory guard counts the descendants too: with `--executor ray` or a
    process pool the shard tasks run in other processes."""
    while not done.wait(WATCH_INTERVAL_S):
        reason = None
        rss = _tree_rss(pid)
        if rss is not None:
            seen.peak_tree_rss = max(seen.peak_tree_rss or 0, rss)
        if limits.timeout_s is not None and time.perf_counter() - started > limits.timeout_s:
            reason = "timeout"
        elif limits.max_rss_bytes is not None and rss is not None and rss > limits.max_rss_bytes:
            reason = "rss_limit"
        if reason and not done.is_set():
            seen.killed = reason
            _kill_group(pid)
            return


def _kill_group(pid: int) -> None:
    """SIGKILL the child's process group (the child leads it: its workers go with it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


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
    before/after bookkeeping (it includes the descendants the child waited for, not Ray's
    workers). Output goes to `log`, not a pipe, so a chatty child cannot block.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(command),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
            process_group=0,  # its own group, so that a kill takes its worker processes too
        )
        done, seen = threading.Event(), Watch()
        watcher = threading.Thread(
            target=_watch, args=(child.pid, limits, started, done, seen), daemon=True
        )
        watcher.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # Ctrl-C reaches the harness only: take the child down with it
            done.set()
            _kill_group(child.pid)
            child.wait()
            raise
        wall = time.perf_counter() - started
        done.set()
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    own = _maxrss_bytes(usage.ru_maxrss)
    return Measurement(
        wall_s=round(wall, 4),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
        peak_rss_bytes=own,
        exit_code=child.returncode,
        killed=seen.killed,
        peak_tree_rss_bytes=None if seen.peak_tree_rss is None else max(own, seen.peak_tree_rss),
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

    def out(self, scenario: str) -> Path:
        return self.root / "runs" / scenario

    def rules_for(self, window_days: int) -> Path:
        return self.root / f"rules-w{window_days}.toml"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


def layout_for(work: Path, scale: Scale, seed: int) -> Layout:
    return Layout(work / f"{scale.name}-seed{seed}")


def generation_params(scale: Scale, seed: int, days: int | None = None) -> dict[str, Any]:
    return {
        "start": START.isoformat(),
        "days": scale.days if days is None else days,
        "shops": scale.shops,
        "orders_per_day": scale.orders_per_day,
        "seed": seed,
    }


def ensure_data(
    layout: Layout, scale: Scale, seed: int, echo: Any, days: int | None = None
) -> dict[str, Any]:
    """Generate `days` days of raw logs (default the scale's window and one new day) unless a
    complete generation with the same parameters and at least as many days is there.

    A longer generation serves a shorter one: the generator draws every value from (seed, what
    it is about) and writes each day from the days before it, so its first days are what a
    shorter generation writes (tests/pipelines/devtools/test_bench.py checks it), and runs read only
    their window's partitions. Generation runs in a child process (`expscore generate`) into a
    side folder that is renamed into place, and the marker is written last, so an interrupted
    generation is never reused.
    """
    params = generation_params(scale, seed, days)
    if layout.marker.is_file() and layout.raw.is_dir():
        recorded = json.loads(layout.marker.read_text("utf-8"))
        have = dict(recorded.get("params", {}))
        if have.pop("days", -1) >= params["days"] and have == {
            k: v for k, v in params.items() if k != "days"
        }:
            return {**recorded, "reused": True}
    partial = layout.root / "raw.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(layout.raw, ignore_errors=True)
    layout.marker.unlink(missing_ok=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    echo(
        f"bench: generating {scale.name} data: {params['days']} days, {scale.shops:,} shops, "
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
# included, beside the backfill's and the nightly run's outputs). A window state per order of its
# window as measured at M on 2026-12-07 (8.1 GB for 30 days of 1M orders): the ray run's copy of
# the backfill's output holds one (its published partitions are hard links), a window run's
# output one beside its copy for the measured night, on top of one from-scratch output's peak.
RAW_BYTES_PER_ORDER = 175
RUNS_PEAK_BYTES_PER_ORDER = 1_650
STATE_BYTES_PER_ORDER = 270
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


def disk_need(
    scale: Scale,
    layout: Layout,
    days: int | None = None,
    windows: Sequence[int] = (),
    skip: frozenset[str] = frozenset(),
) -> DiskNeed:
    """The disk `scale` needs against the free space of the disk under `layout`.

    The raw logs of `days` generated days, the kept outputs (backfill, nightly, scratch), and the
    largest of what comes and goes after them: the ray run's output, a window run's two
    outputs, the peer's spill (at most about its window's raw logs).
    """
    per_day = scale.orders_per_day
    raw = RAW_BYTES_PER_ORDER * per_day * (scale.days if days is None else days)
    runs = RUNS_PEAK_BYTES_PER_ORDER * per_day * scale.window_days
    passing = [0]
    if "ray" not in skip:
        passing.append(STATE_BYTES_PER_ORDER * per_day * scale.window_days)
    if "peer" not in skip:
        passing.append(RAW_BYTES_PER_ORDER * per_day * scale.window_days)
    one_output = RUNS_PEAK_BYTES_PER_ORDER // 3 + STATE_BYTES_PER_ORDER
    passing += [one_output * per_day * w for w in windows]
    present = folder_bytes(layout.root, links_once=True)
    needed = int(DISK_MARGIN * (raw + runs + max(passing)))
    return DiskNeed(needed, present, free_disk_bytes(layout.root))


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
        f"{layout.root} at its peak (raw logs and the runs' outputs, estimated from the sizes "
        f"measured at M); the disk has {need.free_bytes / GIB:.0f} GiB free and the folder "
        f"already holds {need.present_bytes / GIB:.0f} GiB. Free space, choose another "
        "--work or --skip window; --no-disk-check starts anyway"
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
        log: sorted(p for d in dates for p in raw_partition(raw, log, d).glob("*.parquet"))
        for log in LOGS
    }


def window_rows(files: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    """Rows per log, from the Parquet footers: the input size, whatever a run re-reads."""
    return {log: sum(pq.read_metadata(p).num_rows for p in paths) for log, paths in files.items()}


def raw_partition_files(raw: Path, dates: Sequence[dt.date]) -> dict[str, dict[str, list[str]]]:
    """The raw files of `dates` per log and partition date (what the peer reads; its `dt` is
    the partition's)."""
    listing: dict[str, dict[str, list[str]]] = {}
    for log in LOGS:
        listing[log] = {}
        for day in dates:
            paths = sorted(raw_partition(raw, log, day).glob("*.parquet"))
            if paths:
                listing[log][day.isoformat()] = [str(p) for p in paths]
    return listing


def rules_file(layout: Layout, window_days: int) -> Path | None:
    """The shipped rules, or a copy of them with another window length."""
    if window_days == DEFAULT_WINDOW_DAYS:
        return None
    text = resources.files("pipelines.config").joinpath("rules.default.toml").read_text("utf-8")
    text, n = re.subn(r"(?m)^window_days\s*=\s*\d+", f"window_days = {window_days}", text)
    if n != 1:
        raise BenchError("bench: cannot set window_days in the shipped rules file")
    layout.root.mkdir(parents=True, exist_ok=True)
    path = layout.rules_for(window_days)
    path.write_text(text, "utf-8")
    return path


def state_bytes(out: Path) -> dict[str, Any] | None:
    """The window state a run left under `out` (`<out>/.state`, the default `--state`): bytes
    on disk in total and per table of its data files (orders, events, refunds, ...), the run
    exchange (empty between runs) left out. None when there is no state."""
    root = Path(default_state_location(out))
    if not root.is_dir():
        return None
    by_table: dict[str, int] = {}
    total = 0
    for path in root.rglob("*"):
        relative = path.relative_to(root).parts
        if not path.is_file() or relative[0] == "exchange":
            continue
        size = path.stat().st_size
        total += size
        table = relative[2] if relative[0] == "data" and len(relative) > 3 else relative[0]
        by_table[table] = by_table.get(table, 0) + size
    return {"bytes": total, "by_table": dict(sorted(by_table.items()))}


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
    variations (column order, integer widths, naive timestamps, extra columns, an optional column
    left out). An optional column that none of the files carries (13.1: it reads as null) has
    nothing to decode and is not named, as DuckDB could not bind it.
    """
    queries = {}
    for log, paths in files.items():
        if not paths:
            continue
        schema = LOGS[log]
        optional = {c.name for c in schema.columns if c.optional}
        carried = {name for p in paths if optional for name in pq.read_schema(p).names}
        columns = column_list(c for c in schema.column_names if c not in optional - carried)
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
        path = manifest_path(out, day)
        if not path.is_file():
            if not strict:
                continue
            raise BenchError(f"bench: no manifest {path}: the run did not publish {day}")
        manifest = json.loads(path.read_text("utf-8"))
        timings = {k: float(v) for k, v in manifest.get("timings_seconds", {}).items()}
        for stage, seconds in timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
        per_day.append(
            {
                "date": day.isoformat(),
                "status": manifest.get("status"),
                **timings,
                "execution": manifest.get("execution"),
            }
        )
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
    published partition, it writes a new one aside and swaps it in
    (pipelines/nightly/publish.py), so
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
        partition = partition_dir(source, table, previous)
        if partition.is_dir():
            shutil.copytree(partition, target / table / partition.name, copy_function=shutil.copy2)
    # the manifest is what makes those tables a published day (pipelines/nightly/run.py)
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


def run_peer(
    layout: Layout,
    files: Mapping[str, Mapping[str, Sequence[str]]],
    day: dt.date,
    rules: Path | None,
    tag: str,
    limits: Limits = Limits(),
) -> Measurement:
    """The SQL peer (`pipelines.devtools.bench_peer`) for `day`, in a child process like the runs.

    Its stages are its own steps (read, facts, score, write). Raises `ScenarioFailed` when it
    fails or passes a limit."""
    spec = layout.root / "peer-spec.json"
    out = layout.out("peer")
    spec.write_text(
        json.dumps(
            {
                "date": day.isoformat(),
                "rules": None if rules is None else str(rules),
                "files": files,
                "out": str(out),
                # DuckDB's own default is 80% of the machine; below the harness's guard, it
                # spills instead of being killed
                "memory_limit_bytes": None
                if limits.max_rss_bytes is None
                else int(PEER_MEMORY_SHARE * limits.max_rss_bytes),
            }
        ),
        "utf-8",
    )
    log = layout.log(f"peer-{tag}")
    m = measure(
        [sys.executable, "-m", "pipelines.devtools.bench_peer", str(spec)], log, limits=limits
    )
    if not m.ok:
        raise ScenarioFailed(m, failure_text(m, log))
    lines = log.read_text("utf-8").strip().splitlines()
    result = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    m.stages = result["steps"]
    m.extra = {"rows": result["rows"], "query_s": result["seconds"]}
    return m


PEER_MEMORY_SHARE = 0.7  # of the --max-rss guard, the peer's DuckDB memory_limit

PEER_KEYS: dict[str, tuple[str, ...]] = {
    "shop_scores": ("shop_id",),
    "shop_indicators": ("shop_id", "indicator"),
    "item_scores": ("item_id",),
    "shop_traffic_weights": ("shop_id",),
    "item_traffic_weights": ("item_id",),
}
PEER_TOLERANCE = 1e-6
PEER_NOT_COLUMNS = ("dt", "rules_version")  # what every published table carries (10)


def compare_peer(
    peer: Path, published: Path, day: dt.date, tolerance: float = PEER_TOLERANCE
) -> dict[str, Any]:
    """How far the peer's tables agree with what expscore published for `day`.

    Per table: rows on each side and on both (by key); per column the peer computes, the share
    of rows (of the full outer join, so a row on one side only disagrees) whose values agree
    (floats within `tolerance`, both null agreeing), and for floats the largest difference
    where both have a value. Columns the peer leaves out (the shop `weight`) are not compared;
    `expscore_only` names them, so that a column expscore gains and the peer does not (as
    `appeals_upheld` and `excluded` were, v1.1) shows instead of passing unseen.
    """
    tables: dict[str, Any] = {}
    for table, key in PEER_KEYS.items():
        peer_file = peer / f"{table}.parquet"
        if not partition_files(published, table, day) or not peer_file.is_file():
            tables[table] = {"compared": False}
            continue
        ours = scan_day(published, table, day).collect()
        theirs = pl.read_parquet(peer_file)
        joined = ours.join(theirs, on=list(key), how="full", suffix="_peer", coalesce=True)
        both = ours.join(theirs.select(key), on=list(key), how="semi").height
        columns: dict[str, Any] = {}
        for column in theirs.columns:
            if column in key or column not in ours.columns:
                continue
            a, b = joined[column], joined[f"{column}_peer"]
            both_null = a.is_null() & b.is_null()
            if a.dtype.is_float() and b.dtype.is_float():
                diff = (a - b).abs()
                agree = both_null | (diff <= tolerance).fill_null(False)
                largest = diff.max()
                columns[column] = {
                    "agree_share": round(float(agree.mean() or 0.0), 6),
                    "max_abs_diff": None if largest is None else float(largest),
                }
            else:
                agree = both_null | (a.cast(pl.String) == b.cast(pl.String)).fill_null(False)
                columns[column] = {"agree_share": round(float(agree.mean() or 0.0), 6)}
        tables[table] = {
            "compared": True,
            "rows": {"expscore": ours.height, "peer": theirs.height, "both": both},
            "columns": columns,
            "expscore_only": sorted(
                c for c in ours.columns if c not in theirs.columns and c not in PEER_NOT_COLUMNS
            ),
        }
    shops = tables["shop_scores"]
    items = tables["item_scores"]
    return {
        "tolerance": tolerance,
        "score_agree_share": shops.get("columns", {}).get("score", {}).get("agree_share"),
        "score_max_abs_diff": shops.get("columns", {}).get("score", {}).get("max_abs_diff"),
        "pxi_agree_share": items.get("columns", {}).get("pxi", {}).get("agree_share"),
        "pxi_max_abs_diff": items.get("columns", {}).get("pxi", {}).get("max_abs_diff"),
        "all_agree": all(
            t.get("compared") and all(c["agree_share"] == 1.0 for c in t["columns"].values())
            for t in tables.values()
        ),
        "tables": tables,
    }


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


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 4) if numerator and denominator else None


def target_metrics(result: Mapping[str, Any]) -> dict[str, float | bool | None]:
    """Every figure a target compares, from the result (None where it was not measured)."""
    scenarios = result["scenarios"]

    def get(scenario: str, key: str) -> Any:
        return scenarios.get(scenario, {}).get(key)

    def gib(scenario: str) -> float | None:
        rss = get(scenario, "peak_rss_bytes")
        return None if rss is None else round(rss / GIB, 3)

    state = result.get("state", {}).get("nightly")
    windows = result.get("windows", {}).get("legs", {})
    return {
        "nightly_wall_s": get("nightly", "wall_s"),
        "nightly_peak_rss_gib": gib("nightly"),
        "scratch_wall_s": get("scratch", "wall_s"),
        "scratch_peak_rss_gib": gib("scratch"),
        "backfill_wall_s": get("backfill", "wall_s"),
        "nightly_state_gb": None if not state else round(state["bytes"] / 1e9, 3),
        "nightly_identical": result["nightly_vs_scratch"].get("identical"),
        "window_60_to_30": _ratio(
            windows.get("60", {}).get("nightly_wall_s"), windows.get("30", {}).get("nightly_wall_s")
        ),
        "ray_to_local": result.get("ray_vs_local", {}).get("ratio"),
        "ray_identical": result.get("ray_vs_local", {}).get("identical"),
        "nightly_to_peer": result.get("peer", {}).get("nightly_to_peer"),
        "scratch_to_peer": result.get("peer", {}).get("scratch_to_peer"),
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


def _skip_set(skip: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(skip)
    unknown = chosen - set(SKIPPABLE)
    if unknown:
        raise InputError(
            f"bench: --skip {', '.join(sorted(unknown))}: not a scenario; use "
            + ", ".join(SKIPPABLE)
        )
    return chosen


def _windows(scale: Scale, window_days: Sequence[int] | None) -> tuple[int, ...]:
    """The windows of the window runs: `--window-days`, or the scale's and twice it."""
    days = tuple(sorted(set(window_days or (scale.window_days, 2 * scale.window_days))))
    if len(days) < 2 or days[0] < 1:
        raise InputError("bench: --window-days needs at least two different windows of 1+ days")
    return days


def full_window_shards(order_rows: int) -> int:
    """The shard count expscore chooses when it first builds a state over a whole window of
    `order_rows` order versions (`pipelines.state`: about ORDERS_PER_SHARD each).

    The backfill is given it: its first date sees one day of data (nothing is generated before
    START), and the state would keep the shard count that one day suggests (1 instead of 2 at
    mid, 8 instead of 10 at M), unlike the from-scratch run and any state an operator builds
    over a full window. The nightly and Ray runs inherit it from the backfill's state.
    """
    return max(1, min(MAX_SHARDS, math.ceil(order_rows / ORDERS_PER_SHARD)))


def _ray_missing() -> str | None:
    """Why the ray scenario cannot run here, or None."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'expscore[ray]', or the dev extras)"
    return None


def run_bench(
    scale: Scale,
    work: Path,
    repeats: int = 3,
    backfill_repeats: int | None = None,
    seed: int = DEFAULT_SEED,
    echo: Any = print,
    limits: Limits = Limits(),
    disk_check: bool = True,
    skip: Iterable[str] = (),
    window_days: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Generate (or reuse) the data, measure every scenario `repeats` times, return the result.

    First, unless `disk_check` is off, refuse a scale the work folder's disk cannot hold.

    Each repeat starts the nightly run from a fresh copy of the backfill's output, so every
    repeat measures the same step even when a run keeps state under `--out`. `backfill_repeats`
    (default `repeats`) may be lower, since a backfill at M takes many times a nightly run; 0
    reuses the backfill output left by an earlier invocation. `skip` names scenarios not to
    run (`SKIPPABLE`); `window_days` the windows the window runs compare.

    A run that fails or passes a limit is recorded as failed and not repeated; the runs that
    start from the backfill's output are skipped when there is none.
    """
    backfill_repeats = repeats if backfill_repeats is None else backfill_repeats
    if repeats < 1 or backfill_repeats < 0:
        raise InputError("bench: --repeats must be at least 1 and --backfill-repeats at least 0")
    skip = _skip_set(skip)
    windows = () if "window" in skip else _windows(scale, window_days)
    work = work.resolve()
    load_at_start = machine_load()
    layout = layout_for(work, scale, seed)
    days_needed = max((scale.window_days, *windows)) + 1
    disk = disk_need(scale, layout, days_needed, windows, skip)
    if disk_check:
        check_disk(disk, scale, layout)
    generation = ensure_data(layout, scale, seed, echo, days_needed)
    rules = rules_file(layout, scale.window_days)

    backfill_dates = window_dates(
        START + dt.timedelta(days=scale.window_days - 1), scale.window_days
    )
    nightly_date = START + dt.timedelta(days=scale.window_days)
    nightly_window = window_dates(nightly_date, scale.window_days)
    nightly_files = window_files(layout.raw, nightly_window)
    nightly_rows = window_rows(nightly_files)
    backfill_rows = window_rows(window_files(layout.raw, backfill_dates))
    shards = full_window_shards(nightly_rows["orders"])
    backfill_args = [
        "backfill",
        f"--start={backfill_dates[0].isoformat()}",
        f"--end={backfill_dates[-1].isoformat()}",
        f"--shards={shards}",
    ]
    nightly_args = ["run", f"--date={nightly_date.isoformat()}"]

    day_files = window_files(layout.raw, [nightly_date])
    day_rows = window_rows(day_files)
    runs: dict[str, list[Measurement]] = {name: [] for name in SCENARIOS}
    backfill_out, nightly_out, scratch_out = (layout.out(s) for s in RUN_SCENARIOS)
    ray_out = layout.out("ray")
    if (
        backfill_repeats == 0
        and "backfill" not in skip
        and not manifest_path(backfill_out, backfill_dates[-1]).is_file()
    ):
        raise InputError(f"bench: --backfill-repeats 0 needs an earlier backfill in {backfill_out}")
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {name: "--skip" for name in SKIPPABLE if name in skip}
    if "ray" not in skipped and _ray_missing():
        skipped["ray"] = str(_ray_missing())
    if "backfill" in skip:
        for name in ("nightly", "scratch", "ray"):
            skipped.setdefault(name, "needs the backfill's output, and the backfill was skipped")
    elif backfill_repeats == 0:
        skipped["backfill"] = "--backfill-repeats 0: the output of an earlier one is reused"
    peer_rules = rules
    if "peer" not in skipped:
        try:
            bench_peer.read_rules(peer_rules)
        except bench_peer.PeerRulesError as exc:
            skipped["peer"] = f"the rules ask for what the peer does not compute: {exc}"

    def attempt(
        name: str,
        verb_args: list[str],
        out: Path,
        dates: list[dt.date],
        tag: str,
        the_rules: Path | None = rules,
    ) -> bool:
        try:
            measured = run_scenario(name, verb_args, layout, out, the_rules, dates, tag, limits)
        except ScenarioFailed as exc:
            runs.setdefault(name, []).append(exc.measurement)
            failures[name] = exc.reason
            echo(f"bench: {name} FAILED: {exc.reason}")
            return False
        runs.setdefault(name, []).append(measured)
        return True

    def wanted(name: str) -> bool:
        return name not in skipped and name not in failures

    state_after: dict[str, Any] = {}
    for i in range(repeats):
        tag = f"{i + 1}"
        echo(f"bench: repeat {tag}/{repeats}: floor ...")
        runs["floor"].append(run_floor(layout, nightly_files, tag, limits))
        runs["floor_day"].append(run_floor(layout, day_files, tag, limits, name="floor_day"))
        if i < backfill_repeats and wanted("backfill"):
            echo(f"bench: repeat {tag}/{repeats}: backfill of {len(backfill_dates)} days ...")
            shutil.rmtree(backfill_out, ignore_errors=True)
            attempt("backfill", backfill_args, backfill_out, backfill_dates, tag)
        if "backfill" in failures:
            for name in ("nightly", "scratch", "ray"):
                skipped.setdefault(name, "needs the backfill's output, and the backfill failed")
        if wanted("nightly"):
            echo(f"bench: repeat {tag}/{repeats}: nightly run of {nightly_date} ...")
            copy_output(backfill_out, nightly_out)
            if attempt("nightly", nightly_args, nightly_out, [nightly_date], tag):
                state_after["nightly"] = state_bytes(nightly_out)
        if wanted("scratch"):
            echo(f"bench: repeat {tag}/{repeats}: from-scratch run of {nightly_date} ...")
            seed_from_scratch(backfill_out, scratch_out, nightly_date - dt.timedelta(days=1))
            if attempt("scratch", nightly_args, scratch_out, [nightly_date], tag):
                state_after["scratch"] = state_bytes(scratch_out)
        if wanted("ray"):
            echo(f"bench: repeat {tag}/{repeats}: nightly run of {nightly_date} on Ray ...")
            copy_output(backfill_out, ray_out)
            attempt("ray", [*nightly_args, *RAY_ARGS], ray_out, [nightly_date], tag)
        if wanted("peer"):
            echo(f"bench: repeat {tag}/{repeats}: SQL peer for {nightly_date} ...")
            try:
                runs["peer"].append(
                    run_peer(
                        layout,
                        raw_partition_files(layout.raw, nightly_window),
                        nightly_date,
                        peer_rules,
                        tag,
                        limits,
                    )
                )
            except ScenarioFailed as exc:
                runs["peer"].append(exc.measurement)
                failures["peer"] = exc.reason
                echo(f"bench: peer FAILED: {exc.reason}")

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
        "ray": f"expscore run --date {nightly_date} {' '.join(RAY_ARGS)} on top of the "
        "backfill's output",
        "peer": f"plain DuckDB SQL recompute of {nightly_date} from the raw logs of its window "
        "(pipelines/devtools/bench_peer.py)",
    }
    rows_of = {"backfill": sum(backfill_rows.values()), "floor_day": sum(day_rows.values())}
    scenarios: dict[str, dict[str, Any]] = {}
    for name in SCENARIOS:
        scenarios[name] = _scenario_summary(
            name,
            runs[name],
            rows_of.get(name, total_nightly_rows),
            floor_s,
            descriptions[name],
            failures,
            skipped,
        )
    scenarios["floor"]["query_s"] = floor_s
    scenarios["floor_day"]["query_s"] = _median([m.stages["query"] for m in runs["floor_day"]])

    def wall(name: str) -> float | None:
        return scenarios[name].get("wall_s")

    if wall("nightly") and wall("scratch"):
        echo("bench: comparing the nightly and from-scratch tables ...")
        identity = compare_outputs(nightly_out, scratch_out, nightly_date)
        speedup = _ratio(wall("scratch"), wall("nightly"))
    else:
        identity, speedup = {"identical": None, "tables": {}}, None
    ray_vs_local: dict[str, Any] = {"ratio": None, "identical": None, "tables": {}}
    if wall("ray") and wall("nightly"):
        echo("bench: comparing the Ray and local nightly tables ...")
        ray_vs_local = {
            "ratio": _ratio(wall("ray"), wall("nightly")),
            **compare_outputs(nightly_out, ray_out, nightly_date),
        }
    ray_bytes = folder_bytes(ray_out)
    shutil.rmtree(ray_out, ignore_errors=True)
    peer: dict[str, Any] = {
        "computes": list(bench_peer.COMPUTES),
        "skips": list(bench_peer.SKIPS),
        "nightly_to_peer": _ratio(wall("nightly"), wall("peer")),
        "scratch_to_peer": _ratio(wall("scratch"), wall("peer")),
        "compared_with": None,
        "agreement": None,
    }
    published = next(
        (
            (name, out)
            for name, out in (("nightly", nightly_out), ("scratch", scratch_out))
            if wall(name)
        ),
        None,
    )
    if wall("peer") and published:
        echo(f"bench: comparing the SQL peer's tables with the {published[0]} run's ...")
        peer["compared_with"] = published[0]
        peer["agreement"] = compare_peer(layout.out("peer"), published[1], nightly_date)

    window_result = run_windows(layout, scale, windows, repeats, limits, echo, failures)
    scenarios.update(window_result.pop("scenarios"))
    result: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "at_start": load_at_start},
        "scale": {
            **asdict(scale),
            "days_generated": generation["params"]["days"],
            "start": START.isoformat(),
            "seed": seed,
            "raw_bytes": generation.get("raw_bytes"),
            "generation_seconds": generation.get("seconds"),
            "generation_reused": generation.get("reused"),
        },
        "work": str(layout.root),
        "repeats": repeats,
        "backfill_repeats": backfill_repeats,
        "skipped": skipped,
        "floor_seconds": floor_s,
        "floor_basis": "in-process DuckDB query time of the floor (median); every ratio_to_floor "
        "divides by it (a window run's by its own window's floor)",
        "window": {
            "backfill": [backfill_dates[0].isoformat(), backfill_dates[-1].isoformat()],
            "nightly_date": nightly_date.isoformat(),
            "nightly_window": [nightly_window[0].isoformat(), nightly_window[-1].isoformat()],
            "rows": nightly_rows,
            "rows_total": total_nightly_rows,
            "new_day_rows": day_rows,
            "backfill_rows_total": sum(backfill_rows.values()),
            "shards": shards,
        },
        "scenarios": scenarios,
        "nightly_vs_scratch": {"speedup": speedup, **identity},
        "ray_vs_local": ray_vs_local,
        "peer": peer,
        "windows": window_result,
        "state": state_after,
        "limits": asdict(limits),
        "disk_bytes": {
            "raw": generation.get("raw_bytes"),
            **{name: folder_bytes(layout.out(name)) for name in RUN_SCENARIOS},
            "ray": ray_bytes,
            **{
                f"window{w}": leg.get("output_bytes")
                for w, leg in window_result.get("legs", {}).items()
            },
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
        "partitions (a run replaces a partition, never writes into one); state is <out>/.state "
        "after the run, its exchange folder left out",
        f"the backfill builds its state with --shards {shards}, the count expscore chooses for a "
        "whole window (its first date sees one day of data); nightly and ray keep it, scratch "
        "and the window runs choose it themselves",
        "peak_rss_bytes is the child's own (exact); peak_tree_rss_bytes the sampled sum over "
        "its process tree, which with --executor ray includes the Ray workers",
        "the peer leaves out what needs D-1 (labels, the clamped shop weight): see peer.skips",
        *([scale.note] if scale.note else []),
    ]
    result["targets"] = evaluate_targets(scale.name, result)
    return result


def _scenario_summary(
    name: str,
    measured: Sequence[Measurement],
    rows: int,
    floor_s: float | None,
    description: str,
    failures: Mapping[str, str],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """One scenario's JSON: skipped with the reason, or its medians (or failure) and runs."""
    if name in skipped and not measured:
        return {"description": description, "skipped": skipped[name]}
    summary = summarise(measured, rows, floor_s, description, failures.get(name))
    passed = [m for m in measured if m.ok and "statuses" in m.extra]
    if passed:
        summary["statuses"] = sorted({s for m in passed for s in m.extra["statuses"]})
    if (name == "backfill" or name.endswith("_prep")) and passed:
        summary["per_day_last_repeat"] = passed[-1].extra["per_day"]
    if name in failures and measured:  # how far the failed run got (dates it published)
        summary["per_day_published"] = measured[-1].extra.get("per_day_published", [])
    return summary


def run_windows(
    layout: Layout,
    scale: Scale,
    windows: Sequence[int],
    repeats: int,
    limits: Limits,
    echo: Any,
    failures: dict[str, str],
) -> dict[str, Any]:
    """The nightly run of one date under each window length of `windows`.

    The date is the day after the longest window's data (START + max(windows)), the same for
    every W, so the runs differ in their window alone. Per W: the floor of that window, a
    backfill of the WINDOW_WARMUP_NIGHTS + 1 dates before the date into an empty output (its
    first date from scratch, over a whole window) under `window_days = W`, then `repeats`
    nightly runs of the date on copies of it (the last on the output itself). Each W's nightly
    is divided by the smallest W's; the outputs are deleted once measured.
    """
    if not windows:
        return {"scenarios": {}, "legs": {}, "days": []}
    day = START + dt.timedelta(days=max(windows))
    prep_dates = window_dates(day - dt.timedelta(days=1), WINDOW_WARMUP_NIGHTS + 1)
    scenarios: dict[str, dict[str, Any]] = {}
    legs: dict[str, dict[str, Any]] = {}
    for w in windows:
        rules = rules_file(layout, w)
        files = window_files(layout.raw, window_dates(day, w))
        rows = window_rows(files)
        prep_name, night_name = f"window{w}_prep", f"window{w}_nightly"
        prep_out, night_out = layout.out(prep_name), layout.out(night_name)
        floors = []
        for i in range(repeats):
            floors.append(run_floor(layout, files, str(i + 1), limits, name=f"window{w}_floor"))
        floor_s = _median([m.stages["query"] for m in floors])
        echo(f"bench: window {w} days: backfill {prep_dates[0]}..{prep_dates[-1]} ...")
        shutil.rmtree(prep_out, ignore_errors=True)
        prep_args = [
            "backfill",
            f"--start={prep_dates[0].isoformat()}",
            f"--end={prep_dates[-1].isoformat()}",
        ]
        measured: dict[str, list[Measurement]] = {prep_name: [], night_name: []}
        try:
            measured[prep_name].append(
                run_scenario(prep_name, prep_args, layout, prep_out, rules, prep_dates, "1", limits)
            )
        except ScenarioFailed as exc:
            measured[prep_name].append(exc.measurement)
            failures[prep_name] = exc.reason
            echo(f"bench: {prep_name} FAILED: {exc.reason}")
        state = None
        output_bytes = folder_bytes(prep_out)
        for i in range(repeats if prep_name not in failures else 0):
            echo(f"bench: window {w} days: nightly run of {day} ({i + 1}/{repeats}) ...")
            if i == repeats - 1:  # the last night may consume the prep's output
                shutil.rmtree(night_out, ignore_errors=True)
                prep_out.rename(night_out)
            else:
                copy_output(prep_out, night_out)
            try:
                measured[night_name].append(
                    run_scenario(
                        night_name,
                        ["run", f"--date={day.isoformat()}"],
                        layout,
                        night_out,
                        rules,
                        [day],
                        str(i + 1),
                        limits,
                    )
                )
            except ScenarioFailed as exc:
                measured[night_name].append(exc.measurement)
                failures[night_name] = exc.reason
                echo(f"bench: {night_name} FAILED: {exc.reason}")
                break
            state = state_bytes(night_out)
            output_bytes = max(output_bytes, folder_bytes(night_out))
        shutil.rmtree(prep_out, ignore_errors=True)
        shutil.rmtree(night_out, ignore_errors=True)
        skipped = (
            {night_name: "needs the window's backfill, and it failed"}
            if (prep_name in failures)
            else {}
        )
        for name, description, n_rows in (
            (
                prep_name,
                f"expscore backfill {prep_dates[0]}..{prep_dates[-1]} under window_days = {w} "
                "into an empty output (the first date from scratch)",
                sum(rows.values()),
            ),
            (
                night_name,
                f"expscore run --date {day} under window_days = {w} on top of that backfill",
                sum(rows.values()),
            ),
        ):
            scenarios[name] = _scenario_summary(
                name, measured[name], n_rows, floor_s, description, failures, skipped
            )
        nights = [m for m in measured[night_name] if m.ok]
        legs[str(w)] = {
            "floor_s": floor_s,
            "rows_total": sum(rows.values()),
            "nightly_wall_s": scenarios[night_name].get("wall_s"),
            "shards": (nights[-1].extra["per_day"][-1].get("execution") or {}).get("shards")
            if nights
            else None,
            "state": state,
            "output_bytes": output_bytes,
        }
    smallest = legs[str(min(windows))]["nightly_wall_s"]
    for leg in legs.values():
        leg["nightly_to_smallest"] = _ratio(leg["nightly_wall_s"], smallest)
    return {
        "scenarios": scenarios,
        "days": list(windows),
        "date": day.isoformat(),
        "warmup_nights": WINDOW_WARMUP_NIGHTS,
        "legs": legs,
    }


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
    """A few lines a person reads: one row per scenario, stage seconds with their x-floor ratio,
    then what the comparisons found and each target with its figure."""
    scale, machine, window = result["scale"], result["machine"], result["window"]
    scenarios = result["scenarios"]
    own_stages = ("floor", "floor_day", "peer")  # stages of their own, told on their own line
    seen = {
        s for name, sc in scenarios.items() if name not in own_stages for s in sc.get("stages", {})
    }
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
        + f"); {window['shards']} shard(s)",
        "",
    ]
    width = max(len(name) for name in scenarios)
    header = f"{'scenario':<{width}} {'wall s':>8} {'cpu s':>8} {'peak RSS':>10} {'rows/s':>9} "
    header += f"{'x floor':>8}" + "".join(f" {s + ' s (x floor)':>20}" for s in stages)
    header += f" {'other s':>8}"
    lines.append(header)
    for name, sc in scenarios.items():
        if sc.get("skipped"):
            lines.append(f"{name:<{width}} skipped: {sc['skipped']}")
            continue
        if sc.get("failed"):
            last = sc["runs"][-1]
            done = len(sc.get("per_day_published", []))
            lines.append(
                f"{name:<{width}} FAILED after {last['wall_s']:.0f} s at "
                f"{_fmt_bytes(last['peak_rss_bytes'])} ({done} dates published): {sc['failed']}"
            )
            continue
        if "wall_s" not in sc:  # not run this time (an earlier backfill reused)
            continue
        rss = sc["peak_rss_bytes"]
        tree = max((r.get("peak_tree_rss_bytes") or 0) for r in sc["runs"])
        shown = _fmt_bytes(max(rss, tree)) + ("*" if tree > 1.25 * rss else "")
        row = (
            f"{name:<{width}} {sc['wall_s']:>8.2f} {sc['cpu_s']:>8.2f} "
            f"{shown:>10} {_fmt_rate(sc['rows_per_s']):>9} "
            f"{sc['ratio_to_floor']:>7.1f}x"
        )
        for stage in stages:
            st = sc.get("stages", {}).get(stage) if name not in own_stages else None
            cell = "-" if st is None else f"{st['seconds']:.2f} ({st['ratio_to_floor']:.1f}x)"
            row += f" {cell:>20}"
        lines.append(row + f" {sc['other_s']:>8.2f}")
    lines.append("")
    lines += _comparison_lines(result)
    busy = busy_warning(machine)
    if busy:
        lines.append(busy)
    if result["targets"]:
        lines.append(f"targets of issue 19 ({scale['name']}):")
        for t in result["targets"]:
            verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["passed"]]
            if isinstance(t["limit"], bool):
                figure = "not measured" if t["value"] is None else f"{t['value']}"
                limit = "must be true"
            else:
                figure = "not measured" if t["value"] is None else f"{t['value']:.3g} {t['unit']}"
                limit = f"{'<=' if t['at_most'] else '>='} {t['limit']:g} {t['unit']}"
            lines.append(f"  {verdict:<4} {t['description']}: {figure} ({limit})")
    else:
        scales = sorted({t.scale for t in TARGETS})
        lines.append(
            f"targets: none at scale {scale['name']} (issue 19 sets them for "
            + " and ".join(scales)
            + ")"
        )
    return "\n".join(lines)


def _comparison_lines(result: Mapping[str, Any]) -> list[str]:
    """The floor, the identity checks, the state's size, the peer and the window runs."""
    scenarios = result["scenarios"]
    floor = scenarios["floor"]
    lines = [
        f"floor: DuckDB query {floor['query_s']:.2f} s (process {floor['wall_s']:.2f} s), "
        f"{scenarios['floor_day']['query_s']:.2f} s for the new day alone (floor_day); "
        "x floor = seconds / floor query seconds; other = wall outside the manifest's stages "
        "(process start, imports, lock, manifest); * = peak RSS of the process tree (workers)",
    ]
    comparison = result["nightly_vs_scratch"]
    if comparison["speedup"] is None:
        lines.append("nightly vs from scratch: not compared (a run failed or was skipped)")
    else:
        lines.append(
            f"nightly vs from scratch: {comparison['speedup']:.2f}x faster; tables identical: "
            + _identical_text(comparison)
        )
    state = result.get("state", {}).get("nightly")
    if state:
        parts = sorted(state["by_table"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(
            f"state on disk after the night: {_fmt_si(state['bytes'])} ("
            + ", ".join(f"{table} {_fmt_si(size)}" for table, size in parts)
            + ")"
        )
    ray = result.get("ray_vs_local", {})
    if ray.get("ratio") is not None:
        lines.append(
            f"ray vs local nightly: {ray['ratio']:.2f}x the local wall; tables identical: "
            + _identical_text(ray)
        )
    peer = result.get("peer", {})
    peer_scenario = scenarios.get("peer", {})
    if peer_scenario.get("wall_s"):
        steps = ", ".join(
            f"{step} {peer_scenario['stages'][step]['seconds']:.2f} s"
            for step in bench_peer.STEPS
            if step in peer_scenario["stages"]
        )
        text = f"SQL peer: {peer_scenario['wall_s']:.2f} s ({steps})"
        agreement = peer.get("agreement")
        if agreement:
            shops = agreement["tables"]["shop_scores"]
            items = agreement["tables"]["item_scores"]
            text += (
                f"; vs the {peer['compared_with']} tables (within {agreement['tolerance']:g}): "
                f"score {_share(agreement['score_agree_share'])} of "
                f"{shops['rows']['expscore']:,} shops (max diff "
                f"{_fmt_diff(agreement['score_max_abs_diff'])}), pxi "
                f"{_share(agreement['pxi_agree_share'])} of {items['rows']['expscore']:,} items, "
                f"every compared column: {'yes' if agreement['all_agree'] else 'NO'}"
            )
        ratios = [
            f"{what} {peer[key]:.2f}x the peer"
            for what, key in (("nightly", "nightly_to_peer"), ("from scratch", "scratch_to_peer"))
            if peer.get(key) is not None
        ]
        lines.append(text + ("; " + ", ".join(ratios) if ratios else ""))
    windows = result.get("windows", {})
    legs = windows.get("legs", {})
    if legs:
        figures = ", ".join(
            f"{w} days {leg['nightly_wall_s']:.2f} s"
            + (f" ({leg['nightly_to_smallest']:.2f}x)" if leg.get("nightly_to_smallest") else "")
            + (f", {leg['shards']} shard(s)" if leg.get("shards") else "")
            + (f", state {_fmt_si(leg['state']['bytes'])}" if leg.get("state") else "")
            for w, leg in legs.items()
            if leg.get("nightly_wall_s")
        )
        lines.append(
            f"window lengths, nightly of {windows['date']} after {windows['warmup_nights']} "
            f"nights: {figures or 'not measured (a run failed)'}"
        )
    skipped = result.get("skipped", {})
    if skipped:
        lines.append("skipped: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()))
    return lines


def _identical_text(comparison: Mapping[str, Any]) -> str:
    differing = [t for t, v in comparison["tables"].items() if not v["identical"]]
    return "yes" if comparison["identical"] else "NO (" + ", ".join(differing) + ")"


def _fmt_si(n: int) -> str:
    """Bytes in the decimal units the state target is set in (GB), MB below 0.1 GB."""
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _fmt_diff(diff: float | None) -> str:
    return "-" if diff is None else f"{diff:.1e}"


def write_json(result: Mapping[str, Any], path: Path) -> None:
    """The result as indented JSON at `path` (its folder created if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
