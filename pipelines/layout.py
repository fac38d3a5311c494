"""Where everything expscore reads and writes lives, in one place.

    <raw>/<log>/dt=YYYY-MM-DD/*.parquet        the raw logs, one partition per business date
    <out>/<table>/dt=YYYY-MM-DD/part-0.parquet  a published table's partition (one file per run)
    <out>/manifests/dt=YYYY-MM-DD.json          a published date's run manifest
    <out>/manifests/dt=YYYY-MM-DD.held.json     the manifest of a run a quality gate held
    <out>/.expscore.lock                        one run at a time per output folder
    <out>/.state/                               the window state (or another location)
    <out>/.state/exchange/                      where a run's shard tasks meet (or another one)

Every reader and writer builds these paths with the functions below, so a change of layout is
a change here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from scoring.contract import PARTITION_KEY

MANIFEST_DIR = "manifests"
LOCK_NAME = ".expscore.lock"
STATE_DIR = ".state"
EXCHANGE_DIR = "exchange"
HELD_SUFFIX = ".held.json"


def partition_name(day: dt.date) -> str:
    """`dt=YYYY-MM-DD`: a partition folder's name (raw and published alike)."""
    return f"{PARTITION_KEY}={day.isoformat()}"


def partition_date(name: str) -> dt.date:
    """The date of a partition folder named `dt=YYYY-MM-DD` (ValueError for another name)."""
    prefix = f"{PARTITION_KEY}="
    if not name.startswith(prefix):
        raise ValueError(f"{name!r} is not a partition folder ({prefix}YYYY-MM-DD)")
    return dt.date.fromisoformat(name.removeprefix(prefix))


def raw_partition(raw: Path, log: str, day: dt.date) -> Path:
    return Path(raw) / log / partition_name(day)


def partition_dir(out: Path, table: str, day: dt.date) -> Path:
    return Path(out) / table / partition_name(day)


def partition_path(table: str, day: dt.date) -> str:
    """A published partition relative to the output folder, as the manifest records it."""
    return f"{table}/{partition_name(day)}"


def manifest_path(out: Path, day: dt.date) -> Path:
    return Path(out) / MANIFEST_DIR / f"{partition_name(day)}.json"


def held_manifest_path(out: Path, day: dt.date) -> Path:
    return Path(out) / MANIFEST_DIR / f"{partition_name(day)}{HELD_SUFFIX}"


def lock_path(out: Path) -> Path:
    return Path(out) / LOCK_NAME


def default_state_location(out: Path) -> str:
    """The window state's folder when the run names no other location."""
    return str(Path(out) / STATE_DIR)


def default_exchange(out: Path) -> Path:
    """Where a run's shard tasks meet when the state is in the output folder."""
    return Path(out) / STATE_DIR / EXCHANGE_DIR
