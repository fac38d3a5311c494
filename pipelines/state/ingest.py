"""The driver's part of a night: find the raw files the state has not read, check and read them
with DuckDB, quarantine the bad rows, and route every good row to its shard.

A raw file is read once in the state's life: a night reads the new day's files (and any file
that arrived late in a partition already read); a rebuild reads the whole window, one partition
at a time, in one pass per log. Each good row goes to the shard of its order (orders, tracking
events, refunds: `order_id`) or of its session (`session_id`), so that a shard task never needs
another shard's rows (12.4: events and refunds belong to their order, whatever shop they name).
The routed rows cross to the shard tasks as one Arrow file per shard and log in the run's
exchange folder; the quarantined rows are kept in the state, once per raw partition.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.config import duckdb_memory
from pipelines.errors import InputError
from pipelines.executors.exchange import Exchange
from pipelines.ingest.load import (
    canonical,
    check_file,
    check_integer_ranges,
    file_select,
    list_partitions,
    quarantine_select,
    reject_reason_sql,
    unreadable_file_error,
)
from scoring.contract import LOGS, QUARANTINE_SCHEMA, LogSchema
from scoring.window import Window

# Rows handed from DuckDB to Polars at a time: a rebuild's memory stays at about a batch.
BATCH_ROWS = 1_000_000
# The routing key of each log: rows about one order meet in one shard (12.4).
ROUTING_KEY: dict[str, str | None] = {
    "orders": "order_id",
    "logistics": "order_id",
    "refunds": "order_id",
    "cs_sessions": "session_id",
    "appeals": None,  # kept by the driver (`pipelines.state.appeals`): one part
}
# Fibonacci hashing: a multiply by 2^64/phi spreads consecutive ids evenly over the shards,
# and unlike Polars' `hash` it is fixed by this line, so a state's shards outlive upgrades.
_MIX = 0x9E3779B97F4A7C15
ROUTING = "fibonacci64"


def shard_of(column: str, shards: int) -> pl.Expr:
    """The shard of an id: the high 32 bits of `id * 2^64/phi` (mod 2^64), modulo `shards`."""
    mixed = pl.col(column).cast(pl.UInt64, wrap_numerical=True) * pl.lit(_MIX, pl.UInt64)
    return ((mixed // (2**32)) % shards).cast(pl.Int32)


def log_schema(log: str) -> dict[str, pl.DataType]:
    """A log's rows as the state holds them: canonical types, UTC instants, and their `dt`."""
    types = {"BIGINT": pl.Int64, "INTEGER": pl.Int32, "TINYINT": pl.Int8}
    schema: dict[str, pl.DataType] = {}
    for column in LOGS[log].columns:
        match column.kind:
            case "int":
                schema[column.name] = types[column.duck_type]
            case "timestamp":
                schema[column.name] = pl.Datetime("us", "UTC")
            case "bool":
                schema[column.name] = pl.Boolean
            case "string":
                schema[column.name] = pl.String
    return {**schema, "dt": pl.Date}


@dataclass(frozen=True)
class RawFile:
    """A raw Parquet file of the window, named relative to the raw folder."""

    log: str
    day: dt.date
    path: Path
    source: str
    fingerprint: str


@dataclass
class SyncPlan:
    """What a night reads: the raw files new to the state, or why it must start over."""

    rebuild_reason: str | None
    new: list[RawFile] = field(default_factory=list)
    # every raw file of the window after this night, by log and partition: the manifest's `raw`
    window_files: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


FOOTER_TAIL = 8  # a Parquet file ends with its footer's length (4 bytes) and "PAR1"


def fingerprint(path: Path) -> str:
    """What identifies a raw file's content: its size and a digest of its Parquet footer.

    The footer holds every column chunk's offsets, sizes and statistics, so a file rewritten
    with other rows has another footer even when its size and modification time are kept (which
    a fingerprint of size and mtime missed); touching a file changes nothing. Reading it costs
    two small reads, whatever the file's size. A file that is not Parquet gets a digest of its
    tail, and the file check says what is wrong with it.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        tail_start = max(0, size - FOOTER_TAIL)
        fh.seek(tail_start)
        tail = fh.read()
        length = int.from_bytes(tail[:4], "little") if len(tail) == FOOTER_TAIL else -1
        if tail.endswith(b"PAR1") and 0 < length <= size - FOOTER_TAIL:
            fh.seek(size - FOOTER_TAIL - length)
            body = fh.read(length)
        else:
            fh.seek(max(0, size - 65_536))
            body = fh.read()
    return json.dumps([size, hashlib.blake2b(body, digest_size=16).hexdigest()])


def raw_files(raw: Path, window: Window) -> dict[str, dict[dt.date, list[RawFile]]]:
    """The window's raw files per log and partition (a log or partition may be missing)."""
    wanted = set(window.partition_dates())
    found: dict[str, dict[dt.date, list[RawFile]]] = {}
    for log in LOGS:
        found[log] = {}
        for day, folder in list_partitions(raw, log).items():
            if day not in wanted:
                continue
            paths = sorted(folder.glob("*.parquet"))
            for path in paths:
                # a FIFO or a device named *.parquet would block the run while it holds the lock
                if not path.is_file():
                    raise InputError(f"{path}: not a regular file")
            found[log][day] = [
                RawFile(log, day, path, path.relative_to(raw).as_posix(), fingerprint(path))
                for path in paths
            ]
    return found


def plan_sync(
    raw: Path, window: Window, stored: dict[str, dict[str, dict[str, dict]]] | None
) -> SyncPlan:
    """Compare the window's raw files with those the state read (`stored`, None: no state).

    A file the state read that is gone or changed (size or modification time) cannot be taken
    back out of folded facts, so the state is rebuilt; new files, in new partitions or late in
    old ones, are read; partitions that left the window are dropped by the shard tasks.
    """
    on_disk = raw_files(raw, window)
    window_files = {
        log: {
            day.isoformat(): {f.source: f.fingerprint for f in files} for day, files in days.items()
        }
        for log, days in on_disk.items()
    }
    everything = [f for days in on_disk.values() for files in days.values() for f in files]
    if stored is None:
        return SyncPlan(None, everything, window_files)
    first = window.first_date.isoformat()
    for log, days in stored.items():
        for day, files in days.items():
            if day < first:
                continue
            for source, entry in files.items():
                now = window_files.get(log, {}).get(day, {}).get(source)
                if now != entry["fingerprint"]:
                    what = "was removed" if now is None else "changed"
                    return SyncPlan(f"raw file {source} {what} since it was read", [], {})
    new = [
        f for f in everything if f.source not in stored.get(f.log, {}).get(f.day.isoformat(), {})
    ]
    return SyncPlan(None, new, window_files)


@dataclass
class Ingested:
    """What reading the new files gave: per file its counts, and the quarantined rows."""

    counts: dict[str, dict[str, dict[str, dict]]]  # log -> dt -> source -> {rows, rejected}
    quarantine: dict[str, dict[str, pl.DataFrame]]  # log -> dt -> rows


def connect(spill: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for reading raw files, spilling into `spill` past its limit."""
    con = duckdb.connect()
    con.sql(f"SET memory_limit = '{duckdb_memory()}'")
    con.sql(f"SET temp_directory = '{spill.as_posix()}'")
    con.sql("SET preserve_insertion_order = false")
    con.sql("SET TimeZone = 'UTC'")
    return con


@dataclass(frozen=True)
class CheckedFile:
    schema: pa.Schema
    rows: int  # from the footer


def check_new_files(con: duckdb.DuckDBPyConnection, files: list[RawFile]) -> dict[str, CheckedFile]:
    """Every new file's footer, columns, types and integer ranges, before anything is read.

    A bad file stops the run with an `InputError` naming it; the state is not touched.
    """
    checked = {}
    for f in files:
        file_schema, rows = check_file(f.path, LOGS[f.log])
        check_integer_ranges(con, f.path, LOGS[f.log], file_schema)
        checked[f.source] = CheckedFile(file_schema, rows)
    return checked


def ingest(
    con: duckdb.DuckDBPyConnection,
    files: list[RawFile],
    checked: dict[str, CheckedFile],
    window: Window,
    shards: int,
    inbox: Exchange,
) -> Ingested:
    """Read the new files a partition at a time; route good rows into the inbox, by shard.

    Every shard gets a file per log, empty or not, so a task never guesses a schema.
    """
    counts: dict[str, dict[str, dict[str, dict]]] = {}
    quarantine: dict[str, dict[str, pl.DataFrame]] = {}
    for log, schema in LOGS.items():
        arrow_schema = pl.DataFrame(schema=log_schema(log)).to_arrow().schema
        parts = shards if ROUTING_KEY[log] is not None else 1
        writers = [inbox.arrow_writer(arrow_schema, log, inbox_part(s)) for s in range(parts)]
        try:
            days = sorted({f.day for f in files if f.log == log})
            for day in days:
                part = [f for f in files if f.log == log and f.day == day]
                read = _read_partition(con, log, schema, part, checked, window, shards, writers)
                counts.setdefault(log, {})[day.isoformat()] = read[0]
                if read[1].height:
                    quarantine.setdefault(log, {})[day.isoformat()] = read[1]
        finally:
            for writer in writers:
                writer.close()
    return Ingested(counts, quarantine)


def inbox_part(shard: int) -> str:
    return f"part-{shard:05d}.arrow"


def _read_partition(
    con: duckdb.DuckDBPyConnection,
    log: str,
    schema: LogSchema,
    files: list[RawFile],
    checked: dict[str, CheckedFile],
    window: Window,
    shards: int,
    writers: list[pa.ipc.RecordBatchFileWriter],
) -> tuple[dict[str, dict], pl.DataFrame]:
    """One partition's new files: counts per file, the quarantine, good rows to the writers."""
    selects = [
        file_select(f.path, f.source, schema, checked[f.source].schema, f.day, window.tz)
        for f in files
    ]
    try:
        con.sql(
            "CREATE OR REPLACE TEMP TABLE staged AS SELECT *, "
            f"{reject_reason_sql(schema)} AS reject_reason FROM ({' UNION ALL '.join(selects)})"
        )
    except duckdb.Error as exc:
        raise unreadable_file_error(con, [f.path for f in files], selects, exc) from exc
    try:
        counts: dict[str, dict] = {f.source: {"rows": 0, "rejected": {}} for f in files}
        for source, reason, rows in con.sql(
            "SELECT source_file, reject_reason, count(*) FROM staged GROUP BY ALL"
        ).fetchall():
            counts[source]["rows"] += rows
            if reason is not None:
                counts[source]["rejected"][reason] = rows
        typed = ", ".join(
            f'CAST("{c.name}" AS {c.duck_type}) AS "{c.name}"' for c in schema.columns
        )
        good = con.sql(f"SELECT {typed}, dt FROM staged WHERE reject_reason IS NULL")
        key = ROUTING_KEY[log]
        for batch in good.to_arrow_reader(BATCH_ROWS):
            routed = pl.lit(0, pl.Int32) if key is None else shard_of(key, shards)
            rows = canonical(pl.from_arrow(batch), schema).with_columns(shard=routed)
            for (shard,), part in (
                rows.collect().partition_by("shard", as_dict=True, include_key=False).items()
            ):
                writers[shard].write_table(part.select(list(log_schema(log))).to_arrow())
        rejected = pl.from_arrow(con.sql(quarantine_select(log, schema, "staged")).to_arrow_table())
    finally:
        con.sql("DROP TABLE IF EXISTS staged")
    if rejected.height == 0:
        rejected = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return counts, rejected.cast(QUARANTINE_SCHEMA).sort("source_file", "source_row")
