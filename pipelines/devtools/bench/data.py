"""The benchmark's data and folders: where a scale's data and run outputs live, generating
the raw logs once (or reusing them), the disk a scale needs, the window's files and rows, the rules
of a window length and the window state a run leaves."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.devtools.bench.children import BenchError, _require_success, measure
from pipelines.devtools.bench.scales import DEFAULT_WINDOW_DAYS, GIB, START, Scale
from pipelines.layout import default_state_location, raw_partition
from scoring.contract import LOGS


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
