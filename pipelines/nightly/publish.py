"""Atomic publish of one date's partition: write aside, then swap it into place.

A reader globbing `<out>/<table>/dt=*/` sees the old partition or the new one, never a mix and
never a half-written file. On Linux the swap is one `renameat2(RENAME_EXCHANGE)` call, so the
partition is never even briefly missing; elsewhere it falls back to two renames. Staging folders
start with a dot, so readers that skip hidden entries (DuckDB globs on `dt=*`, Polars, Spark)
never see them; a crashed run's leftovers are removed by the next publish of that table.

DuckDB's `COPY ... (PARTITION_BY, OVERWRITE)` is deliberately not used: it deletes every sibling
partition under the target folder (engineering notes).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.layout import partition_dir
from scoring.contract import PARTITION_KEY

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_renameat2 = _load_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the platform cannot."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean_stale_staging(table_dir: Path) -> None:
    """Remove staging/retired folders a killed run left behind in `table_dir` (a folder: the
    callers create it or check it first)."""
    for child in table_dir.iterdir():
        if child.name.startswith((".staging-", ".retired-")):
            shutil.rmtree(child, ignore_errors=True)


def publish_partition(out: Path, table: str, day: dt.date, frame: pl.DataFrame) -> Path:
    """Replace `<out>/<table>/dt=<day>/` with a partition holding exactly `frame`.

    `dt` is written in the folder's name only, never as a column of the file: a date column in
    the files beside the hive key in the path makes pandas and pyarrow refuse the whole table
    ("Unable to merge: Field dt has incompatible types", issue 21). A `dt` column in `frame`
    must say `day` (it is how the scoring code carries the date) and is dropped here.
    """
    if PARTITION_KEY in frame.columns:
        if frame.height and not (frame[PARTITION_KEY] == day).all():
            raise ValueError(f"{table}: rows of another date than {day} in its partition")
        frame = frame.drop(PARTITION_KEY)
    table_dir = out / table
    table_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(table_dir)
    target = partition_dir(out, table, day)
    token = uuid.uuid4().hex[:12]
    staging = table_dir / f".staging-{target.name}-{token}"
    staging.mkdir()
    file = staging / "part-0.parquet"
    frame.write_parquet(file, compression="zstd", statistics=True)
    with open(file, "rb") as fh:
        os.fsync(fh.fileno())
    fsync_dir(staging)

    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now holds the old partition
    else:
        retired = table_dir / f".retired-{target.name}-{token}"
        os.rename(target, retired)
        os.rename(staging, target)
        shutil.rmtree(retired)
    fsync_dir(table_dir)
    return target


def write_text_atomic(path: Path, text: str) -> None:
    """Write a temp file beside `path`, then rename it over `path`.

    A reader sees the old file or the whole new one (manifests, reports), never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, payload: dict) -> None:
    """`payload` as indented JSON, written atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def read_partition(out: Path, table: str, day: dt.date) -> pl.DataFrame | None:
    """A published partition with `dt` taken from its folder, or None when that date was never
    published. A `dt` column inside the files (written by versions before issue 21) is
    replaced by the folder's, so old and new partitions read alike."""
    folder = partition_dir(out, table, day)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    frame = pl.read_parquet(files, hive_partitioning=False)
    return frame.drop(PARTITION_KEY, strict=False).with_columns(
        pl.lit(day, pl.Date).alias(PARTITION_KEY)
    )
