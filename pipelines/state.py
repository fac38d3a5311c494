"""The window state: the cleaned raw window kept in DuckDB between nightly runs (issue 3).

A run for date D needs the current state of the four logs over the partitions D-(W-1)..D. Each
night the window moves by one partition, so instead of re-reading and re-validating W days of raw
Parquet, the state keeps what the last run derived from them and moves it:

    versions_<log>   every good row of every window partition (all columns, with its `dt`)
    current_<log>    current state (2.5) over those rows: scoring columns, and what a night needs
                     to move it (the version, the partition, the key's number of rows)
    order_tracking   per order: pickup, delivery, door, exception, trail (`tracking_facts`)
    order_refunds    per order: quality refund, first problem request (`order_refund_flags`)
    quarantine       the rejected rows of every window partition, with their reasons
    files            the raw files read per partition, with their row counts
    partitions       per partition: a fingerprint of its files (name, size, mtime)

`sync_window` makes the state equal to what the raw folder holds for a window: a partition that
left the window, or whose files changed, is evicted; a new or changed one is loaded. Only keys
that occur in evicted or loaded rows can change their current state, and only orders that one of
those events or refunds names can change their per-order rows, so the nightly work is about two
days of rows plus scans of the stored ones to find the touched keys (DuckDB cannot skip row
groups for a scattered set of keys: each such scan reads the whole table). Nothing in the state
depends on the cutoff or on the rules beyond the window (length and time zone): the run joins and
filters it per date, and `scoring.facts.window_order_facts` decides what needs the cutoff.

The state is a cache of the raw window. An empty state synced to a window is the from-scratch
run (the same code), `--rebuild` deletes it, a state written for another window length, time zone
or state format is rebuilt, and one that cannot be opened is set aside and rebuilt. Every sync is
one DuckDB transaction: a run killed halfway leaves the previous state.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipelines.errors import ExpscoreError
from pipelines.load import (
    SCORING_COLUMNS,
    LoadedInputs,
    WindowLoad,
    check_file,
    check_integer_ranges,
    column_list,
    current_state_sql,
    file_select,
    list_partitions,
    quarantine_select,
    reject_reason_sql,
    sql_literal,
    to_polars,
    unreadable_file_error,
)
from pipelines.schemas import LOGS, LogSchema
from scoring.facts import later_events_only, merge_tracking, order_refund_flags, tracking_facts
from scoring.window import Window

STATE_FORMAT = "5"
STATE_DIR = ".state"
STATE_FILE = "window.duckdb"
SHARDS_DIR = "shards"  # the default exchange of shard files (pipelines/shards.py)
# Per-order rows are recomputed in chunks of about this many source rows (events or refunds),
# so the first sync of a large window never holds all of them in Polars at once.
DERIVED_CHUNK_ROWS = 4_000_000
MERGE_CHUNK_EVENTS = 2_000_000  # new events folded into tracking rows at a time
# DuckDB's memory limit when EXPSCORE_DUCKDB_MEMORY does not set one. Its buffer pool fills the
# limit, so the limit is most of a run's peak RSS: a nightly sync (a partition or two per log)
# peaks at 2.8 GiB at M scale with 2GB and is no faster with 6GB, while loading a whole window
# at M runs out of memory at 2GB and needs the larger limit.
NIGHTLY_DUCKDB_MEMORY = "2GB"
BULK_DUCKDB_MEMORY = "6GB"
NIGHTLY_PARTITIONS = 2  # new partitions per log up to which a sync counts as nightly
# The limit while shard tasks in this process read their orders from a state file: a scan of one
# shard needs little, and the lower limit evicts the blocks the sync left in DuckDB's buffer pool,
# which would otherwise sit beside each shard's Polars frames.
READING_DUCKDB_MEMORY = "1GB"

ORDER_TRACKING_COLUMNS = {
    "order_id": "BIGINT",
    "pickup_at": "TIMESTAMP",
    "has_exception": "BOOLEAN",
    "delivered_at": "TIMESTAMP",
    "delivered_at_door": "BOOLEAN",
    "longest_trail_gap_us": "BIGINT",
    "last_trail_event_at": "TIMESTAMP",
    "last_event_at": "TIMESTAMP",
    # the partitions the row's events came from: a row with an event from a partition that has
    # left the window is stale (`_settle_tracking`), one with all of them gone is dropped
    "first_event_dt": "DATE",
    "last_event_dt": "DATE",
}
# per-order columns the state keeps for itself; scoring does not read them
TRACKING_BOOKKEEPING = ("last_event_at", "first_event_dt", "last_event_dt")
# what a current row keeps beyond its scoring columns, so that a night can move it by comparing
# it with the new rows of its key instead of re-reading all of the key's rows (`_move_current`): the
# version column of a change log, the row's partition, and how many rows the key has
CURRENT_BOOKKEEPING = ("dt", "copies")
ORDER_REFUND_COLUMNS = {
    "order_id": "BIGINT",
    "has_quality_refund": "BOOLEAN",
    "first_problem_requested_at": "TIMESTAMP",
}

# Current orders with their per-order rows: what scoring reads for the orders of V.
ORDER_FACTS_COLUMNS = (
    *SCORING_COLUMNS["orders"],
    *(c for c in ORDER_TRACKING_COLUMNS if c != "order_id"),
    *(c for c in ORDER_REFUND_COLUMNS if c != "order_id"),
)
ORDER_FACT_SOURCES = ("orders", "logistics", "refunds")
# `order_facts` rows are kept clustered by the shop's hash bucket, so that a shard (a range of
# buckets, pipelines/shards.py) is read by a scan that skips the other shards' row groups.
SHOP_BUCKETS = 1024
BUCKET_COLUMN = "bucket"


def shop_bucket(column: str = "shop_id") -> str:
    """SQL for a shop's hash bucket, `hash(shop_id) % SHOP_BUCKETS`, in [0, SHOP_BUCKETS)."""
    return f'CAST(hash("{column}") % {SHOP_BUCKETS} AS SMALLINT)'


def tracking_rows(events: pl.LazyFrame) -> pl.LazyFrame:
    """`tracking_facts` per order, with the first and last partition its events came from."""
    spans = events.group_by("order_id").agg(
        first_event_dt=pl.col("dt").min(), last_event_dt=pl.col("dt").max()
    )
    return tracking_facts(events).join(spans, on="order_id", how="left")


@dataclass(frozen=True)
class Derived:
    """A per-order table derived from one log's current state by a pure scoring function."""

    table: str
    log: str
    columns: dict[str, str]
    compute: Callable[[pl.LazyFrame], pl.LazyFrame]
    source_columns: tuple[str, ...]


DERIVED = (
    Derived(
        "order_tracking",
        "logistics",
        ORDER_TRACKING_COLUMNS,
        tracking_rows,
        ("event_id", "order_id", "event_type", "event_at", "door_delivery", "dt"),
    ),
    Derived(
        "order_refunds",
        "refunds",
        ORDER_REFUND_COLUMNS,
        order_refund_flags,
        ("order_id", "reason", "requested_at", "is_abnormal"),
    ),
)
TRACKING = DERIVED[0]


@dataclass
class SyncReport:
    """What a sync did: the manifest's `state` section."""

    path: str | None
    rebuilt_because: str | None = None
    evicted: dict[str, list[str]] = field(default_factory=dict)  # log -> dates
    loaded: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # log -> partitions reused
    keys_touched: dict[str, int] = field(default_factory=dict)
    orders_recomputed: dict[str, int] = field(default_factory=dict)  # derived table -> orders
    orders_merged: dict[str, int] = field(default_factory=dict)  # derived table -> orders

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "rebuilt_because": self.rebuilt_because,
            "partitions_evicted": self.evicted,
            "partitions_loaded": self.loaded,
            "partitions_kept": self.kept,
            "keys_touched": self.keys_touched,
            "orders_recomputed": self.orders_recomputed,
            "orders_merged": self.orders_merged,
        }


# --------------------------------------------------------------------------------------------
# opening


def state_path(out: Path) -> Path:
    return out / STATE_DIR / STATE_FILE


def open_state(
    path: Path, window: Window, rebuild: bool = False
) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    """A connection to the state file at `path`, and why it was rebuilt (None: it was not).

    The connection spills to `<state dir>/tmp` under the memory limit.
    """
    reason = None
    path.parent.mkdir(parents=True, exist_ok=True)
    if rebuild and path.exists():
        _remove_database(path)
        reason = "--rebuild"
    con, unreadable = _connect(path)
    reason = reason or unreadable
    stale = _stale_reason(con, window)
    if stale is not None:
        con.close()
        _remove_database(path)
        con, _ = _connect(path)
        reason = stale
    _create_tables(con)
    _set_meta(con, window)
    return con, reason


def open_state_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """The state at `path` for reading only (benchmarks), configured as a run configures it."""
    con = duckdb.connect(str(path), read_only=True)
    _configure(con, path.parent / "tmp")
    return con


def connect_memory(spill: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the run's memory limit, spilling into `spill`.

    DuckDB's default limit is 80% of RAM, which leaves nothing for Polars after the hand-off; a
    30-day window at 200k orders a day took all 24 GiB before there was a limit.
    """
    con = duckdb.connect()
    _configure(con, spill)
    return con


def memory_state(spill: Path) -> duckdb.DuckDBPyConnection:
    """An empty state in memory: a run that keeps nothing (from scratch, dry runs)."""
    con = connect_memory(spill)
    _create_tables(con)
    return con


def duckdb_memory_limit(partitions_to_load: int | None = None) -> str:
    """DuckDB's memory limit: EXPSCORE_DUCKDB_MEMORY, else by how much a sync has to load."""
    nightly = partitions_to_load is not None and partitions_to_load <= NIGHTLY_PARTITIONS
    default = NIGHTLY_DUCKDB_MEMORY if nightly else BULK_DUCKDB_MEMORY
    return os.environ.get("EXPSCORE_DUCKDB_MEMORY", default)


def limit_for_reading(con: duckdb.DuckDBPyConnection) -> None:
    """Lower DuckDB's memory limit once the sync is done (EXPSCORE_DUCKDB_MEMORY still wins).

    Only for a state file: an in-memory state's tables live in the buffer pool, and a lower limit
    would write them out to the spill folder.
    """
    limit = os.environ.get("EXPSCORE_DUCKDB_MEMORY", READING_DUCKDB_MEMORY)
    con.sql(f"SET memory_limit = '{limit}'")


def _connect(path: Path) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    try:
        con = duckdb.connect(str(path))
        con.sql("SELECT 1").fetchall()
        reason = None
    except duckdb.Error as exc:
        # A cache that cannot be opened (a torn file, another DuckDB's format) is set aside for
        # inspection and rebuilt from raw; the run loses time, never correctness.
        aside = path.with_name(path.name + ".unreadable")
        _remove_database(aside)
        path.rename(aside)
        con = duckdb.connect(str(path))
        reason = f"the state could not be opened ({str(exc).splitlines()[0]}); set aside as {aside}"
    _configure(con, path.parent / "tmp")
    return con, reason


def _configure(con: duckdb.DuckDBPyConnection, spill: Path) -> None:
    con.sql(f"SET memory_limit = '{duckdb_memory_limit()}'")
    con.sql(f"SET temp_directory = '{spill.as_posix()}'")
    con.sql("SET preserve_insertion_order = false")
    con.sql("SET TimeZone = 'UTC'")


def _remove_database(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)
    shutil.rmtree(path.parent / "tmp", ignore_errors=True)


def _stale_reason(con: duckdb.DuckDBPyConnection, window: Window) -> str | None:
    """Why a stored state cannot serve `window` (None: it can, or there is none yet)."""
    tables = {row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" not in tables:
        return None if not tables else "the state has no metadata"
    meta = dict(con.sql("SELECT name, value FROM meta").fetchall())
    for name, value in _meta(con, window).items():
        if meta.get(name) != value:
            return f"state {name} is {meta.get(name)!r}, the run needs {value!r}"
    return None


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    statements = [
        "CREATE TABLE IF NOT EXISTS meta (name VARCHAR, value VARCHAR)",
        "CREATE TABLE IF NOT EXISTS partitions (log VARCHAR, dt DATE, fingerprint VARCHAR)",
        "CREATE TABLE IF NOT EXISTS files (log VARCHAR, dt DATE, path VARCHAR, rows BIGINT)",
        "CREATE TABLE IF NOT EXISTS quarantine (log VARCHAR, reason VARCHAR, source_dt DATE, "
        "source_file VARCHAR, source_row BIGINT, record_key BIGINT, row VARCHAR)",
    ]
    for log, schema in LOGS.items():
        columns = ", ".join(f'"{c.name}" {c.duck_type}' for c in schema.columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS versions_{log} ({columns}, dt DATE)")
        types = {c.name: c.duck_type for c in schema.columns} | {"dt": "DATE", "copies": "INTEGER"}
        current = ", ".join(f'"{name}" {types[name]}' for name in current_columns(log))
        statements.append(f"CREATE TABLE IF NOT EXISTS current_{log} ({current})")
    for derived in DERIVED:
        columns = ", ".join(f'"{n}" {t}' for n, t in derived.columns.items())
        statements.append(f"CREATE TABLE IF NOT EXISTS {derived.table} ({columns})")
    types = {
        **{c: LOGS["orders"].column(c).duck_type for c in SCORING_COLUMNS["orders"]},
        **ORDER_TRACKING_COLUMNS,
        **ORDER_REFUND_COLUMNS,
    }
    columns = ", ".join(f'"{c}" {types[c]}' for c in ORDER_FACTS_COLUMNS)
    statements.append(
        f'CREATE TABLE IF NOT EXISTS order_facts ({columns}, "{BUCKET_COLUMN}" SMALLINT)'
    )
    for statement in statements:
        con.sql(statement)


def _meta(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, str]:
    """What a state must have been built for to serve `window`: anything else is rebuilt.

    `buckets` pins DuckDB's `hash`: the stored buckets of `order_facts` must be the ones this
    DuckDB computes for refunds and sessions, or a shop would be split between two shards.
    """
    probe = con.sql(f"SELECT list({shop_bucket('i')} ORDER BY i) FROM range(16) t(i)")
    return {
        "format": STATE_FORMAT,
        "window_days": str(window.days),
        "timezone": window.tz,
        "buckets": str(probe.fetchall()[0][0]),
    }


def _set_meta(con: duckdb.DuckDBPyConnection, window: Window) -> None:
    values = _meta(con, window)
    con.sql(f"DELETE FROM meta WHERE name IN ({', '.join(map(sql_literal, values))})")
    for name, value in values.items():
        con.sql(f"INSERT INTO meta VALUES ({sql_literal(name)}, {sql_literal(value)})")


# --------------------------------------------------------------------------------------------
# sync


def partition_fingerprint(folder: Path) -> str:
    """The partition's Parquet files with size and modification time: changed files reload it."""
    entries = []
    for path in sorted(folder.glob("*.parquet")):
        stat = path.stat()
        entries.append([path.name, stat.st_size, stat.st_mtime_ns])
    return json.dumps(entries, separators=(",", ":"))


def sync_window(
    con: duckdb.DuckDBPyConnection, raw: Path, window: Window, report: SyncReport
) -> SyncReport:
    """Make the state hold exactly the raw window of `window`, in one transaction.

    A bad file raises `InputError` (from the file checks) and rolls the transaction back: the
    state stays what it was.
    """
    con.sql("SET TimeZone = 'UTC'")
    wanted = set(window.partition_dates())
    plans: dict[str, tuple[list[dt.date], dict[dt.date, tuple[Path, str]]]] = {}
    for log in LOGS:
        on_disk = {d: p for d, p in list_partitions(raw, log).items() if d in wanted}
        fingerprints = {d: (p, partition_fingerprint(p)) for d, p in on_disk.items()}
        stored = dict(
            con.sql(
                f"SELECT dt, fingerprint FROM partitions WHERE log = {sql_literal(log)}"
            ).fetchall()
        )
        evict = sorted(d for d, fp in stored.items() if fingerprints.get(d, (None, None))[1] != fp)
        fresh = {d: v for d, v in sorted(fingerprints.items()) if stored.get(d) != v[1]}
        plans[log] = (evict, fresh)
        report.evicted[log] = [d.isoformat() for d in evict]
        report.loaded[log] = [d.isoformat() for d in fresh]
        report.kept[log] = len(stored) - len(evict)

    limit = duckdb_memory_limit(max(len(fresh) for _, fresh in plans.values()))
    con.sql(f"SET memory_limit = '{limit}'")
    # every new file's footer, columns and integer ranges are checked before the state changes
    checked = {
        log: _check_new_files(con, raw, log, schema, plans[log][1], window)
        for log, schema in LOGS.items()
        if plans[log][0] or plans[log][1]
    }
    con.sql("BEGIN TRANSACTION")
    try:
        for log, files in checked.items():
            evict, fresh = plans[log]
            report.keys_touched[log] = _move_log(con, log, evict, files, report.kept[log] == 0)
            _record_partitions(con, log, evict, fresh, files)
        if TRACKING.log in checked:
            _drop_left_tracking(con, window)
        for derived in DERIVED:
            if derived.log not in checked:
                continue
            everything = report.kept[derived.log] == 0
            if derived is TRACKING and not everything and len(plans[derived.log][1]) <= 1:
                merged, redone = _merge_tracking(con, window)
                report.orders_merged[derived.table] = merged
            else:
                redone = _recompute_derived(con, derived, None if everything else derived.log)
            report.orders_recomputed[derived.table] = redone
        feeding = [log for log in ORDER_FACT_SOURCES if log in checked]
        if feeding:
            everything = any(report.kept[log] == 0 for log in feeding)
            scope = None if everything else [f"affected_orders_{log}" for log in feeding]
            report.orders_recomputed["order_facts"] = _refresh_order_facts(con, scope)
            stale = _settle_tracking(con, window)
            if stale:
                report.orders_recomputed[TRACKING.table] += stale
        con.sql("COMMIT")
    except BaseException as exc:
        con.sql("ROLLBACK")
        if isinstance(exc, _ReadFailure):
            # outside the aborted transaction, find the file that cannot be read
            raise unreadable_file_error(con, exc.paths, exc.selects, exc.error) from exc.error
        if isinstance(exc, duckdb.OutOfMemoryException):
            raise ExpscoreError(
                f"the window state sync ran out of memory at DuckDB's limit of "
                f"{limit} (EXPSCORE_DUCKDB_MEMORY); the state is unchanged. "
                f"Raise the limit and rerun. ({str(exc).splitlines()[0]})"
            ) from exc
        raise
    finally:
        for log in LOGS:
            for stage in MOVE_TABLES:
                con.sql(f"DROP TABLE IF EXISTS temp.{stage}_{log}")
        for table in ("derived_source", "affected_order_facts", *MERGE_TABLES):
            con.sql(f"DROP TABLE IF EXISTS temp.{table}")
    if any(report.loaded.values()) or any(report.evicted.values()):
        con.sql("CHECKPOINT")
    return report


@dataclass(frozen=True)
class NewFile:
    day: dt.date
    path: Path
    source: str  # relative to raw: stable across machines
    select: str  # the SQL that reads it, cast and tagged
    rows: int


class _ReadFailure(Exception):
    """A new file failed while being read inside the transaction (a corrupt page)."""

    def __init__(self, files: list[NewFile], error: duckdb.Error) -> None:
        super().__init__(str(error))
        self.paths = [f.path for f in files]
        self.selects = [f.select for f in files]
        self.error = error


def _check_new_files(
    con: duckdb.DuckDBPyConnection,
    raw: Path,
    log: str,
    schema: LogSchema,
    fresh: dict[dt.date, tuple[Path, str]],
    window: Window,
) -> list[NewFile]:
    """Check every file of the new partitions (footer, columns, types, integer ranges)."""
    files = []
    for day, (folder, _) in fresh.items():
        for path in sorted(folder.glob("*.parquet")):
            file_schema, rows = check_file(path, schema)
            check_integer_ranges(con, path, schema, file_schema)
            source = path.relative_to(raw).as_posix()
            select = file_select(path, source, schema, file_schema, day, window.tz)
            files.append(NewFile(day, path, source, select, rows))
    return files


# the temporary tables of a log's move (`<stage>_<log>`), dropped when the sync ends
MOVE_TABLES = (
    "incoming",
    "leaving",
    "arriving",
    "touched",
    "before",
    "moved",
    "after",
    "affected_orders",
)


def _move_log(
    con: duckdb.DuckDBPyConnection,
    log: str,
    evict: list[dt.date],
    files: list[NewFile],
    empty: bool,
) -> int:
    """Evict partitions and load new ones of one log, a partition at a time.

    A partition at a time keeps a first load of a whole window at one day of raw rows in flight
    (all thirty at once spilled 23 GB at M scale). Into a state with nothing kept (`empty`: a
    first load, a rebuild, a jump past the whole window) every partition's rows are stored and
    current state is computed once at the end; moving it night by night instead kept thirty
    nights of temporary tables alive in the one transaction (over 40 GB of spill at M). Returns
    the keys whose current state was redone.
    """
    schema = LOGS[log]
    con.sql(f"CREATE OR REPLACE TEMP TABLE affected_orders_{log} (order_id BIGINT)")
    days = sorted({f.day for f in files}) or [None]
    touched = 0
    for i, day in enumerate(days):
        _stage_incoming(con, schema, log, [f for f in files if f.day == day])
        evicting = evict if i == 0 else []
        if empty:
            _store_rows(con, log, schema, evicting)
        else:
            touched += _move_current(con, log, schema, evicting)
    if empty:
        con.sql(f"DELETE FROM current_{log}")
        con.sql(f"INSERT INTO current_{log} {current_rows_sql(log, f'versions_{log}')}")
        touched = con.sql(f"SELECT count(*) FROM current_{log}").fetchall()[0][0]
    return touched


def _stage_incoming(
    con: duckdb.DuckDBPyConnection, schema: LogSchema, log: str, files: list[NewFile]
) -> None:
    """Read files into `incoming_<log>`, each row with its first reason code (or NULL)."""
    union = " UNION ALL ".join(f.select for f in files) if files else _empty_select(schema)
    try:
        con.sql(
            f"CREATE OR REPLACE TEMP TABLE incoming_{log} AS "
            f"SELECT *, {reject_reason_sql(schema)} AS reject_reason FROM ({union})"
        )
    except duckdb.Error as exc:
        raise _ReadFailure(files, exc) from exc


def _empty_select(schema: LogSchema) -> str:
    columns = ", ".join(
        f'CAST(NULL AS {"BIGINT" if c.kind == "int" else c.duck_type}) AS "{c.name}"'
        for c in schema.columns
    )
    return (
        f"SELECT {columns}, CAST(NULL AS DATE) AS dt, CAST(NULL AS TIMESTAMP) AS part_cutoff, "
        "CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS BIGINT) AS source_row WHERE false"
    )


def _in_dates(dates: list[dt.date]) -> str:
    return "(" + ", ".join(sql_literal(d) for d in dates) + ")" if dates else "(NULL)"


def _store_rows(
    con: duckdb.DuckDBPyConnection, log: str, schema: LogSchema, evict: list[dt.date]
) -> None:
    """Swap the evicted partitions' rows (and quarantine, files) for those of `incoming_<log>`."""
    evicted = _in_dates(evict)
    con.sql(f"DELETE FROM versions_{log} WHERE dt IN {evicted}")
    con.sql(f"DELETE FROM quarantine WHERE log = {sql_literal(log)} AND source_dt IN {evicted}")
    con.sql(f"DELETE FROM files WHERE log = {sql_literal(log)} AND dt IN {evicted}")
    con.sql(f"INSERT INTO versions_{log} SELECT * FROM {_good_incoming(log, schema)}")
    con.sql(f"INSERT INTO quarantine {quarantine_select(log, schema, f'incoming_{log}')}")


def _good_incoming(log: str, schema: LogSchema) -> str:
    """The good rows of `incoming_<log>` as `versions_<log>` stores them."""
    typed = ", ".join(f'CAST("{c.name}" AS {c.duck_type}) AS "{c.name}"' for c in schema.columns)
    return f"(SELECT {typed}, dt FROM incoming_{log} WHERE reject_reason IS NULL)"


def _move_current(
    con: duckdb.DuckDBPyConnection, log: str, schema: LogSchema, evict: list[dt.date]
) -> int:
    """Store the incoming rows and move the current rows of the keys they and the evicted touch.

    A key's current row is the best of its rows (`current_state_order`), so after the move it
    is the better of its current row before, if that row stays, and its best incoming row: the
    rows that stay are no better than the current row, and the incoming ones are all in
    `arriving`. The two never share a partition (a partition is either stored or incoming), so
    comparing the version and partition decides; were they ever to share one, the key is looked
    up rather than compared on its other columns, which the stored row does not keep. `copies`
    moves by the rows arriving and leaving. Only a key whose current row leaves while other rows
    of it stay (a copy of an event from a later partition, an order version that arrived late)
    is looked up in `versions`.
    Returns the number of keys touched.
    """
    key = f'"{schema.key}"'
    kept = column_list(current_columns(log))
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE leaving_{log} AS SELECT {key} AS k, count(*) AS copies "
        f"FROM versions_{log} WHERE dt IN {_in_dates(evict)} GROUP BY 1"
    )
    arriving = current_rows_sql(log, _good_incoming(log, schema))
    con.sql(f"CREATE OR REPLACE TEMP TABLE arriving_{log} AS {arriving}")
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE touched_{log} AS "
        f"SELECT k FROM leaving_{log} UNION SELECT {key} FROM arriving_{log}"
    )
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE before_{log} AS "
        f"SELECT * FROM current_{log} WHERE {key} IN (SELECT k FROM touched_{log})"
    )
    _store_rows(con, log, schema, evict)

    # `b` a key's current row before, `l` its rows leaving, `a` its best arriving row
    leaves = f"b.dt IN {_in_dates(evict)}" if evict else "false"
    if schema.change_log:
        v = f'"{schema.version_column}"'
        arriving_wins = f"(a.{v} > b.{v} OR (a.{v} = b.{v} AND a.dt > b.dt))"
    else:
        arriving_wins = "a.dt < b.dt"
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE moved_{log} AS SELECT t.k, CASE "
        f"WHEN b.{key} IS NOT NULL AND ({leaves} OR b.dt IS NOT DISTINCT FROM a.dt) "
        "AND b.copies - coalesce(l.copies, 0) > 0 THEN 'versions' "
        f"WHEN b.{key} IS NOT NULL AND NOT {leaves} "
        f"AND (a.{key} IS NULL OR NOT {arriving_wins}) THEN 'before' "
        f"WHEN a.{key} IS NOT NULL THEN 'arriving' END AS source, "
        "CAST(coalesce(b.copies, 0) - coalesce(l.copies, 0) + coalesce(a.copies, 0) AS INTEGER) "
        f"AS copies FROM touched_{log} t LEFT JOIN before_{log} b ON b.{key} = t.k "
        f"LEFT JOIN leaving_{log} l ON l.k = t.k LEFT JOIN arriving_{log} a ON a.{key} = t.k"
    )
    moved = f"moved_{log} m ON m.k = r.{key}"
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE after_{log} AS "
        f"SELECT r.* REPLACE (m.copies AS copies) FROM before_{log} r JOIN {moved} "
        "WHERE m.source = 'before' UNION ALL "
        f"SELECT r.* REPLACE (m.copies AS copies) FROM arriving_{log} r JOIN {moved} "
        "WHERE m.source = 'arriving'"
    )
    lookups = con.sql(f"SELECT count(*) FROM moved_{log} WHERE source = 'versions'")
    if lookups.fetchall()[0][0]:
        rows = (
            f"(SELECT * FROM versions_{log} WHERE {key} IN "
            f"(SELECT k FROM moved_{log} WHERE source = 'versions'))"
        )
        con.sql(f"INSERT INTO after_{log} {current_rows_sql(log, rows)}")

    con.sql(f"DELETE FROM current_{log} WHERE {key} IN (SELECT k FROM touched_{log})")
    con.sql(f"INSERT INTO current_{log} SELECT {kept} FROM after_{log}")
    if log == "orders":
        con.sql(f"INSERT INTO affected_orders_{log} SELECT k FROM touched_{log}")
    elif any(d.log == log for d in DERIVED):
        # the orders a touched refund or event named, before and after: either may change (a
        # refund or event can even move to another order between copies)
        con.sql(
            f"INSERT INTO affected_orders_{log} SELECT order_id FROM before_{log} "
            f"UNION SELECT order_id FROM after_{log}"
        )
    return con.sql(f"SELECT count(*) FROM touched_{log}").fetchall()[0][0]


def current_rows_sql(log: str, rows: str) -> str:
    """The current rows of `rows` (a table or query of `versions_<log>` rows) as
    `current_<log>` holds them: the first load, the arriving rows and the lookups of a move."""
    columns = column_list(current_columns(log))
    return f"SELECT {columns} FROM ({current_state_sql(LOGS[log], rows)})"


def current_columns(log: str) -> tuple[str, ...]:
    """The columns of `current_<log>`: scoring's, then the bookkeeping of `_move_current`."""
    schema = LOGS[log]
    version = (schema.version_column,) if schema.change_log else ()
    extra = tuple(c for c in version if c not in SCORING_COLUMNS[log])
    return SCORING_COLUMNS[log] + extra + CURRENT_BOOKKEEPING


def _record_partitions(
    con: duckdb.DuckDBPyConnection,
    log: str,
    evict: list[dt.date],
    fresh: dict[dt.date, tuple[Path, str]],
    files: list[NewFile],
) -> None:
    con.sql(f"DELETE FROM partitions WHERE log = {sql_literal(log)} AND dt IN {_in_dates(evict)}")
    if files:
        con.executemany(
            "INSERT INTO files VALUES (?, ?, ?, ?)",
            [(log, f.day, f.source, f.rows) for f in files],
        )
    if fresh:
        con.executemany(
            "INSERT INTO partitions VALUES (?, ?, ?)",
            [(log, day, fingerprint) for day, (_, fingerprint) in fresh.items()],
        )


def _recompute_derived(con: duckdb.DuckDBPyConnection, derived: Derived, log: str | None) -> int:
    """Redo the per-order rows of the orders in `affected_orders_<log>` (None: of every order).

    The rows are recomputed from the orders' current rows with the scoring function, in chunks:
    order_id ranges cut at approximate quantiles, so each holds about `DERIVED_CHUNK_ROWS`
    source rows and every order's rows land in one chunk; a range filter is a cheap scan (and
    skips row groups by their min/max). Returns the number of orders redone.
    """
    source = f"current_{derived.log}"
    if log is None:
        con.sql(f"DELETE FROM {derived.table}")
        scope = "true"
        orders = con.sql(f"SELECT count(DISTINCT order_id) FROM {source}").fetchall()[0][0]
    else:
        affected = f"affected_orders_{log}"
        con.sql(
            f"CREATE OR REPLACE TEMP TABLE {affected} AS SELECT DISTINCT order_id FROM {affected}"
        )
        con.sql(f"DELETE FROM {derived.table} WHERE order_id IN (SELECT order_id FROM {affected})")
        orders = con.sql(f"SELECT count(*) FROM {affected}").fetchall()[0][0]
        # one scan of the big table; the counts and chunks below read this copy
        columns = column_list(derived.source_columns)
        con.sql(
            f"CREATE OR REPLACE TEMP TABLE derived_source AS SELECT {columns} FROM {source} "
            f"SEMI JOIN {affected} USING (order_id)"
        )
        source, scope = "derived_source", "true"
    rows = con.sql(f"SELECT count(*) FROM {source} WHERE {scope}").fetchall()[0][0]
    chunks = max(1, math.ceil(rows / DERIVED_CHUNK_ROWS))
    ranges = ["true"]
    if chunks > 1:
        cuts = con.sql(
            f"SELECT approx_quantile(order_id, {[i / chunks for i in range(1, chunks)]}) "
            f"FROM {source} WHERE {scope}"
        ).fetchall()[0][0]
        cuts = sorted(set(cuts))
        ranges = [f"order_id <= {cuts[0]}"]
        ranges += [f"order_id > {lo} AND order_id <= {hi}" for lo, hi in itertools.pairwise(cuts)]
        ranges.append(f"order_id > {cuts[-1]}")
    columns = column_list(derived.source_columns)
    out_columns = column_list(derived.columns)
    for in_chunk in ranges:
        frame = pl.from_arrow(
            con.sql(f"SELECT {columns} FROM {source} WHERE {scope} AND {in_chunk}").to_arrow_table()
        )
        if frame.height == 0:
            continue
        result = derived.compute(frame.lazy()).select(list(derived.columns)).collect()
        # no try/finally: a statement in a failed transaction would hide the first error
        con.register("derived_rows", result.to_arrow())
        con.sql(f"INSERT INTO {derived.table} SELECT {out_columns} FROM derived_rows")
        con.unregister("derived_rows")
    return orders


def _refresh_order_facts(con: duckdb.DuckDBPyConnection, affected: list[str] | None) -> int:
    """Redo `order_facts` rows for the orders listed in the `affected` tables (None: all).

    `order_facts` is current orders joined to their per-order rows, kept so that scoring reads
    each shard with a scan instead of probing the per-order tables once per shard (1 s a shard
    at M scale), and kept in order of the shop's bucket so that the scan skips the row groups of
    other shards (reading the 16 shards of M one by one: 2.1 s, against 6.0 s unclustered). The
    affected orders are those whose order, tracking or refund rows may have changed. Returns
    the number of orders redone.
    """
    columns = column_list(ORDER_FACTS_COLUMNS)
    joined = (
        f"SELECT {columns}, {shop_bucket()} AS {BUCKET_COLUMN} FROM current_orders o "
        "LEFT JOIN order_tracking t USING (order_id) LEFT JOIN order_refunds r USING (order_id)"
    )
    # sorted, each insert's row groups hold few buckets: a shard's scan skips the others'
    clustered = f"ORDER BY {BUCKET_COLUMN}"
    if affected is None:
        con.sql("DELETE FROM order_facts")
        con.sql(f"INSERT INTO order_facts {joined} {clustered}")
        return con.sql("SELECT count(*) FROM order_facts").fetchall()[0][0]
    con.sql(
        "CREATE OR REPLACE TEMP TABLE affected_order_facts AS "
        + " UNION ".join(f"SELECT order_id FROM {table}" for table in affected)
    )  # dropped with the other temporary tables when the sync ends
    in_affected = "order_id IN (SELECT order_id FROM affected_order_facts)"
    con.sql(f"DELETE FROM order_facts WHERE {in_affected}")
    con.sql(f"INSERT INTO order_facts {joined} WHERE o.{in_affected} {clustered}")
    return con.sql("SELECT count(*) FROM affected_order_facts").fetchall()[0][0]


# --------------------------------------------------------------------------------------------
# merging a day's events into the per-order tracking rows

# the merge's temporary tables, dropped when the sync ends
MERGE_TABLES = ("tracking_redo", "tracking_added", "tracking_stored", "affected_orders_stale")
# what makes two current copies of an event differ for the tracking rows
_EVENT_COLUMNS = ("order_id", "event_type", "event_at", "door_delivery", "dt")


def _drop_left_tracking(con: duckdb.DuckDBPyConnection, window: Window) -> None:
    """Delete tracking rows all of whose events came from partitions that left the window.

    Afterwards an order without a row has no current event, which the merge relies on.
    """
    con.sql(f"DELETE FROM order_tracking WHERE last_event_dt < {sql_literal(window.first_date)}")


def _merge_tracking(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[int, int]:
    """Fold the sync's new events into the tracking rows; recompute only what cannot be folded.

    A sync that moved the logistics log by one partition left, per touched event, its current
    row before (`before_logistics`) and after (`after_logistics`). Per event:
    - no row before, a row after: a new event. When all of an order's new events are later
      than its stored events, `merge_tracking` folds them into its row (nearly every order on
      a nightly run); otherwise the order is recomputed from its current events;
    - a row before from a partition that left the window, none after: the event left with its
      partition. Nothing is done now: the row is stale (its `first_event_dt` is before the
      window) and is recomputed by `_settle_tracking` if its order can be in V;
    - any other change (a copy from another partition became current, a partition was
      restated or evicted inside the window): the orders named before and after are recomputed.

    Returns the numbers of orders merged and recomputed. `affected_orders_logistics` is left
    holding both, for `order_facts`.
    """
    first = sql_literal(window.first_date)
    differs = " OR ".join(f"b.{c} IS DISTINCT FROM a.{c}" for c in _EVENT_COLUMNS)
    con.sql(
        "CREATE OR REPLACE TEMP TABLE tracking_redo AS "
        "SELECT b.order_id FROM before_logistics b LEFT JOIN after_logistics a "
        f"ON a.event_id = b.event_id WHERE (a.event_id IS NULL AND b.dt >= {first}) "
        f"OR (a.event_id IS NOT NULL AND ({differs})) "
        "UNION SELECT a.order_id FROM after_logistics a JOIN before_logistics b "
        f"ON a.event_id = b.event_id WHERE {differs}"
    )
    con.sql(
        "CREATE OR REPLACE TEMP TABLE tracking_added AS SELECT a.* EXCLUDE (copies) "
        "FROM after_logistics a "
        "ANTI JOIN before_logistics b ON a.event_id = b.event_id "
        "ANTI JOIN tracking_redo r ON a.order_id = r.order_id"
    )
    con.sql(
        "CREATE OR REPLACE TEMP TABLE tracking_stored AS "
        f"SELECT {', '.join(ORDER_TRACKING_COLUMNS)} FROM order_tracking "
        "SEMI JOIN tracking_added USING (order_id)"
    )
    events = con.sql("SELECT count(*) FROM tracking_added").fetchall()[0][0]
    # in parts of about MERGE_CHUNK_EVENTS events, read one at a time: the merge's frames are a
    # few times its input, on top of DuckDB's buffer pool (3.6 GiB at M in one part)
    parts = max(1, math.ceil(events / MERGE_CHUNK_EVENTS))
    merged_parts, unfolded_parts = [], []
    for i in range(parts):
        in_part = f"WHERE hash(order_id) % {parts} = {i}"
        added = _naive_frame(con, f"SELECT * FROM tracking_added {in_part}")
        stored = _naive_frame(con, f"SELECT * FROM tracking_stored {in_part}")
        extends = later_events_only(stored.lazy(), added.lazy()).collect()
        later = added.join(extends.filter("extends"), on="order_id", how="semi")
        merged_parts.append(_merged_rows(stored, later).collect())
        unfolded_parts.append(extends.filter(~pl.col("extends")).select("order_id"))
    merged = pl.concat(merged_parts)
    con.register("unfolded", pl.concat(unfolded_parts).to_arrow())
    con.sql("INSERT INTO tracking_redo SELECT order_id FROM unfolded")
    con.unregister("unfolded")
    con.sql(
        "CREATE OR REPLACE TEMP TABLE affected_orders_logistics AS "
        "SELECT DISTINCT order_id FROM tracking_redo"
    )
    con.register("merged_rows", merged.to_arrow())
    con.sql(
        "DELETE FROM order_tracking USING merged_rows "
        "WHERE order_tracking.order_id = merged_rows.order_id"
    )
    con.sql(
        f"INSERT INTO order_tracking SELECT {', '.join(ORDER_TRACKING_COLUMNS)} FROM merged_rows"
    )
    con.unregister("merged_rows")
    redone = _recompute_derived(con, TRACKING, "logistics")
    con.register("merged_orders", merged.select("order_id").to_arrow())
    con.sql("INSERT INTO affected_orders_logistics SELECT order_id FROM merged_orders")
    con.unregister("merged_orders")
    return merged.height, redone


def _merged_rows(stored: pl.DataFrame, later: pl.DataFrame) -> pl.LazyFrame:
    """`merge_tracking` of stored rows and later events, with the partitions they span."""
    spans = (
        later.lazy()
        .group_by("order_id")
        .agg(new_first=pl.col("dt").min(), new_last=pl.col("dt").max())
        .join(
            stored.lazy().select("order_id", "first_event_dt", "last_event_dt"),
            on="order_id",
            how="left",
        )
        .select(
            "order_id",
            first_event_dt=pl.min_horizontal("first_event_dt", "new_first"),
            last_event_dt=pl.max_horizontal("last_event_dt", "new_last"),
        )
    )
    facts = stored.lazy().drop("first_event_dt", "last_event_dt")
    return (
        merge_tracking(facts, later.lazy())
        .join(spans, on="order_id", how="left")
        .select(list(ORDER_TRACKING_COLUMNS))
    )


def _settle_tracking(con: duckdb.DuckDBPyConnection, window: Window) -> int:
    """Recompute stale tracking rows of orders that can be in V, and their `order_facts`.

    A row is stale when one of its events came from a partition that has left the window
    (`_merge_tracking` leaves evictions for here). Such an event is older than the window's
    start, so only an order paid in the window can care, and only if the event came before its
    payment: on real data there are none, so this is one scan of `order_facts`. An order that
    becomes a candidate later (a new version moves its payment) is caught on that night.
    Returns the number of orders recomputed.
    """
    con.sql(
        "CREATE OR REPLACE TEMP TABLE affected_orders_stale AS SELECT order_id FROM order_facts "
        f"WHERE first_event_dt < {sql_literal(window.first_date)} "
        f"AND paid_at >= {sql_literal(window.start)}"
    )
    stale = con.sql("SELECT count(*) FROM affected_orders_stale").fetchall()[0][0]
    if stale:
        _recompute_derived(con, TRACKING, "stale")
        _refresh_order_facts(con, ["affected_orders_stale"])
    return stale


def _naive_frame(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    """A query's rows as Polars; instants stay naive UTC, as every table of the state has them."""
    return pl.from_arrow(con.sql(query).to_arrow_table())


# --------------------------------------------------------------------------------------------
# reading the state for one date


def window_load(con: duckdb.DuckDBPyConnection, raw: Path, window: Window) -> WindowLoad:
    """What the manifest and the gates report about the window: files, counts, quarantine."""
    wanted = set(window.partition_dates())
    order = {log: i for i, log in enumerate(LOGS)}
    files = sorted(
        (
            {"log": log, "dt": day.isoformat(), "path": path, "rows": rows}
            for log, day, path, rows in con.sql("SELECT log, dt, path, rows FROM files").fetchall()
        ),
        key=lambda f: (order[f["log"]], f["dt"], f["path"]),
    )
    rejected: dict[str, dict[str, int]] = {log: {} for log in LOGS}
    for log, reason, rows in con.sql(
        "SELECT log, reason, count(*) FROM quarantine GROUP BY ALL ORDER BY 1, 2"
    ).fetchall():
        rejected[log][reason] = rows
    missing = {
        log: [
            d.isoformat()
            for d in sorted(wanted - {d for d in list_partitions(raw, log) if d in wanted})
        ]
        for log in LOGS
    }
    quarantine = pl.from_arrow(
        con.sql(
            "SELECT * FROM quarantine ORDER BY log, source_dt, source_file, source_row"
        ).to_arrow_table()
    )
    return WindowLoad(
        quarantine=quarantine,
        files=files,
        rows_read={log: sum(f["rows"] for f in files if f["log"] == log) for log in LOGS},
        rows_current={
            log: con.sql(f"SELECT count(*) FROM current_{log}").fetchall()[0][0] for log in LOGS
        },
        rejected=rejected,
        missing_partitions=missing,
    )


def load_window(con: duckdb.DuckDBPyConnection, raw: Path, window: Window) -> LoadedInputs:
    """The window from raw into `con` (a fresh connection), with current state as Polars frames.

    For commands that want the whole current state at once (what-if, tests); the nightly run
    reads the state per shard instead (`window_facts`).
    """
    _create_tables(con)
    sync_window(con, raw, window, SyncReport(path=None))
    frames = {
        log: to_polars(
            con,
            f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in SCORING_COLUMNS[log])} "
            f"FROM current_{log}",
            LOGS[log],
        )
        for log in LOGS
    }
    return LoadedInputs(**vars(window_load(con, raw, window)), **frames)
