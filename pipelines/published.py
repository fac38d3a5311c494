"""Reading the published output back: which dates exist, and lazy scans of a table's partitions.

The analyst commands (explain, query, report) only ever read what `run` published, never the raw
logs, so what they show is exactly what merchants and downstream systems received. Partitions
are `<out>/<table>/dt=YYYY-MM-DD/*.parquet`; hidden staging folders (`.staging-…`) are skipped
because they never match `dt=*`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.layout import manifest_path, partition_date, partition_dir
from scoring.contract import PARTITION_KEY, PUBLISHED_SCHEMAS


def published_dates(out: Path, table: str = "shop_scores") -> list[dt.date]:
    """Dates with a published partition of `table` (folders `dt=YYYY-MM-DD` holding Parquet)."""
    table_dir = Path(out) / table
    if not table_dir.is_dir():
        return []
    dates = []
    for folder in table_dir.glob("dt=*"):
        try:
            day = partition_date(folder.name)
        except ValueError:
            continue
        # a date is published once its manifest is written (last): without it, the run of
        # that date did not finish publishing, and its tables may be a mix of two runs
        if any(folder.glob("*.parquet")) and manifest_path(Path(out), day).is_file():
            dates.append(day)
    return sorted(dates)


def _date_range_text(dates: list[dt.date]) -> str:
    """Some published dates (at least one), as an error message names them."""
    if len(dates) == 1:
        return dates[0].isoformat()
    return f"{dates[0]} .. {dates[-1]}, {len(dates)} dates"


def resolve_date(out: Path, day: dt.date | None, table: str = "shop_scores") -> dt.date:
    """`day` if `table` was published for it, the latest published date when `day` is None.

    Raises InputError naming what exists, so a typo'd date or a wrong --out is obvious.
    """
    dates = published_dates(out, table)
    if not dates:
        raise InputError(f"{out}: no published {table} (expected {out}/{table}/dt=YYYY-MM-DD/)")
    if day is None:
        return dates[-1]
    if day not in dates:
        raise InputError(
            f"{out}: no {table} output for {day} (published: {_date_range_text(dates)})"
        )
    return day


def partition_files(out: Path, table: str, day: dt.date) -> list[Path]:
    folder = partition_dir(out, table, day)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def scan_day(out: Path, table: str, day: dt.date) -> pl.LazyFrame:
    """A lazy scan of one date's partition; an empty frame of the table's schema when missing.

    Lazy so that filters on a shop or item id are pushed into the Parquet reader: explaining
    one shop of a million reads row groups, not the whole table.
    """
    return scan_days(out, table, [day])


def scan_days(out: Path, table: str, days: list[dt.date]) -> pl.LazyFrame:
    """The partitions of `table` for the given dates that exist, stacked, with `dt` (a date)
    taken from each partition's folder name; an empty frame of the table's schema when none
    exists.

    `dt` is not a column of the published files (issue 21); a file written before that which
    still holds one has it replaced by the folder's. Columns come in the order of the tables
    `run` builds (`dt` before `rules_version`). Partitions are stacked diagonally, so a period
    that spans an upgrade which added a column reads with nulls where the older dates lack it.
    """
    scans = [
        pl.scan_parquet(files, hive_partitioning=False).select(
            pl.exclude(PARTITION_KEY, "rules_version"),
            pl.lit(day, pl.Date).alias(PARTITION_KEY),
            pl.col("rules_version"),
        )
        for day in days
        if (files := partition_files(out, table, day))
    ]
    if not scans:
        return pl.LazyFrame(schema=PUBLISHED_SCHEMAS[table])
    return scans[0] if len(scans) == 1 else pl.concat(scans, how="diagonal_relaxed")
