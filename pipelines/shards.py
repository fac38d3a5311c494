"""Scoring's per-row work, split into shop shards that any executor can run (issues 3 and 6).

A shard is `hash(shop_id) % B`: every row of a shop lands in the same shard, and only the small
global steps (category priors, percentiles, labels, weights) need all shops at once. A run's
facts stage has three steps:

1. bucket (driver): the state rows whose contributions the run computes (`SumsPlan`: every row
   of the window, or only the changed ones) are streamed once out of the window state and
   written as one Arrow IPC file per shard and log into the exchange;
2. contribute (executor, one task per shard): `shard_contributions` reads its shard's three
   files, computes each row's contribution with the same Polars functions whatever the
   executor, and writes them back to the exchange as Parquet;
3. gather (driver): the contributions are read back and either moved into the state's totals
   (`window_sums.apply`, a nightly run) or summed here (`gather`, a run without a state).

Only file locations and a few counts cross between the driver and the tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.exchange import Exchange
from pipelines.executors import IN_PROCESS, Executor, ExecutorOptions, open_executor
from pipelines.load import canonical
from pipelines.schemas import LOGS
from pipelines.state import ORDER_REFUND_COLUMNS, ORDER_TRACKING_COLUMNS
from pipelines.window_sums import SOURCES, SumsPlan
from scoring.activity import (
    VALIDITY,
    order_contributions,
    refund_contributions,
    session_contributions,
    window_totals,
)
from scoring.daily import DayFacts, facts_from_totals
from scoring.facts import valid_paid_orders, window_order_facts
from scoring.window import Window

# Orders of V per scoring shard when the shard count is chosen automatically.
ORDERS_PER_SHARD = 3_000_000
# Rows streamed out of DuckDB at a time while bucketing: memory stays at about a batch.
SHARD_BATCH_ROWS = 1_000_000
INPUTS = tuple(source.log for source in SOURCES)


def auto_shards(con: duckdb.DuckDBPyConnection) -> int:
    """Enough shards that each holds about `ORDERS_PER_SHARD` current orders."""
    orders = con.sql("SELECT count(*) FROM current_orders").fetchall()[0][0]
    return max(1, math.ceil(orders / ORDERS_PER_SHARD))


@dataclass(frozen=True)
class ShardTask:
    """What one shard task needs: its number, the run's exchange and the window."""

    shard: int
    exchange: Exchange
    window: Window


@dataclass(frozen=True)
class ShardDone:
    """What a shard task reports back: the rows it read per log and how long it took."""

    shard: int
    rows: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class FactsReport:
    """The facts stage for the manifest: which rows, which executor, what each shard did."""

    executor: str
    shards: list[ShardDone]
    full: bool
    full_because: str | None = None

    def to_dict(self) -> dict:
        seconds = [s.seconds for s in self.shards]
        return {
            "executor": self.executor,
            "shards": len(self.shards),
            "contributions": "full" if self.full else "changed rows",
            "full_because": self.full_because,
            "rows_recomputed": {log: sum(s.rows[log] for s in self.shards) for log in INPUTS},
            "orders_per_shard_max": max(s.rows["orders"] for s in self.shards),
            "shard_seconds_max": round(max(seconds), 4),
            "shard_seconds_total": round(sum(seconds), 4),
        }


def part_name(shard: int, suffix: str) -> str:
    return f"part-{shard:05d}.{suffix}"


@contextmanager
def shard_exchange(base: str) -> Iterator[Exchange]:
    """A fresh exchange folder under `base` (a folder or URI) for one run, deleted afterwards.

    Deleted whether the run succeeds or not; a run killed outright leaves its `run-*` folder,
    which `clean_stale` removes from a local base under the output lock.
    """
    exchange = Exchange.for_run(base)
    try:
        yield exchange
    finally:
        exchange.remove()


def bucket_window(
    con: duckdb.DuckDBPyConnection, plan: SumsPlan, shards: int, exchange: Exchange
) -> None:
    """Write the rows whose contributions `plan` computes into the exchange, per shard."""
    for source in SOURCES:
        bucket_by_shard(con, plan.rows(con, source), shards, exchange, source.log)


def map_shards(
    runner: Executor, exchange: Exchange, window: Window, shards: int
) -> list[ShardDone]:
    """`shard_contributions` of every shard, on an executor that is already running."""
    tasks = [ShardTask(shard, exchange, window) for shard in range(shards)]
    return runner.map(shard_contributions, tasks)


def contribution_parts(exchange: Exchange, shards: int) -> Callable[[str], Iterator[pa.Table]]:
    """The shards' contributions of a log, read one shard at a time."""

    def parts(log: str) -> Iterator[pa.Table]:
        for shard in range(shards):
            yield exchange.read_arrow(f"contrib_{log}", part_name(shard, "arrow"))

    return parts


def window_facts(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    shards: int,
    exchange_base: str,
    executor: ExecutorOptions = IN_PROCESS,
) -> tuple[DayFacts, FactsReport]:
    """The facts of `window` from a synced state, summed here: the state's totals stay as they are.

    Every row's contribution is computed (what-if, benchmarks); the nightly run computes only the
    changed rows' and moves the state's totals instead.
    """
    plan = SumsPlan(window, full=True, reason="computed without the state's totals")
    with shard_exchange(exchange_base) as exchange:
        bucket_window(con, plan, shards, exchange)
        with open_executor(executor, shards) as runner:
            done = map_shards(runner, exchange, window, shards)
        facts = gather(exchange, window, shards)
    return facts, FactsReport(runner.name, done, plan.full, plan.reason)


def bucket_by_shard(
    con: duckdb.DuckDBPyConnection, query: str, shards: int, exchange: Exchange, name: str
) -> None:
    """Stream a query's rows into one Arrow IPC file per shard: `<exchange>/<name>/part-<k>`.

    One scan, batches of `SHARD_BATCH_ROWS`, each split by shard and appended to its shard's
    file as a row group. Every shard gets a file, empty or not, so a task never has to guess a
    schema (the file carries it).
    """
    reader = con.sql(f"SELECT *, hash(shop_id) % {shards} AS shard FROM ({query})").to_arrow_reader(
        SHARD_BATCH_ROWS
    )
    # the files hold Polars' own Arrow types, so neither side converts (about 1 s of 9 at M)
    columns = reader.schema.remove(reader.schema.get_field_index("shard"))
    schema = pl.from_arrow(columns.empty_table()).to_arrow().schema
    writers = [exchange.arrow_writer(schema, name, part_name(s, "arrow")) for s in range(shards)]
    try:
        for batch in reader:
            parts = pl.from_arrow(batch).partition_by("shard", as_dict=True, include_key=False)
            for (shard,), part in parts.items():
                writers[shard].write_table(part.to_arrow())
    finally:
        for writer in writers:
            writer.close()


def shard_contributions(task: ShardTask) -> ShardDone:
    """One shard's contributions, read from and written to the exchange.

    The task of every executor: it imports nothing from the driver's memory, so it runs the same
    in this process, in a worker process or on a Ray node.
    """
    clock = time.perf_counter()
    part = part_name(task.shard, "arrow")
    frames = {log: pl.from_arrow(task.exchange.read_arrow(log, part)) for log in INPUTS}
    window = task.window
    orders_v = window_order_facts(valid_paid_orders(_orders(frames["orders"]), window), window)
    rows = {
        "orders": order_contributions(orders_v, window),
        "refunds": refund_contributions(canonical(frames["refunds"], LOGS["refunds"]), window),
        "cs_sessions": session_contributions(
            canonical(frames["cs_sessions"], LOGS["cs_sessions"]), window
        ),
    }
    # the state keeps instants as naive UTC, as it keeps the logs
    naive = [f.with_columns(pl.col(VALIDITY).dt.replace_time_zone(None)) for f in rows.values()]
    for log, frame in zip(rows, pl.collect_all(naive), strict=True):
        table = frame.to_arrow()
        with task.exchange.arrow_writer(
            table.schema, f"contrib_{log}", part_name(task.shard, "arrow")
        ) as writer:
            writer.write_table(table)
    return ShardDone(
        shard=task.shard,
        rows={log: frame.height for log, frame in frames.items()},
        seconds=time.perf_counter() - clock,
    )


def gather(exchange: Exchange, window: Window, shards: int) -> DayFacts:
    """All shards' contributions summed into the facts of `window` (in Polars, no state)."""
    parts = contribution_parts(exchange, shards)

    def rows(log: str) -> pl.LazyFrame:
        frame = pl.concat([pl.from_arrow(p) for p in parts(log)], how="vertical_relaxed")
        return frame.lazy()

    totals = window_totals(rows("orders"), rows("refunds"), rows("cs_sessions"))
    return facts_from_totals(window, totals)


def _orders(frame: pl.DataFrame) -> pl.LazyFrame:
    """State rows of orders with their tracking and refund rows, in canonical types."""
    per_order = {**ORDER_TRACKING_COLUMNS, **ORDER_REFUND_COLUMNS}
    instants = [name for name, duck_type in per_order.items() if duck_type == "TIMESTAMP"]
    return canonical(frame, LOGS["orders"]).with_columns(
        pl.col(instants).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
