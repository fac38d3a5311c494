"""Scoring's per-shop work, split into shop shards that any executor can run (issues 3 and 6).

A shop's bucket is `hash(shop_id) % 1024` (`SHOP_BUCKETS`), and shard `k` of `B` holds the
buckets `b` with `b * B // 1024 == k`: a range of buckets. Every row of a shop lands in the same
shard, so a shard's per-shop sums are final, and only the small global steps (category priors,
percentiles, labels, weights) need all shops at once. The state keeps `order_facts` in bucket
order, so one shard's orders are read with a scan that skips the other shards' row groups, for
any `B`. A run's facts stage has three steps:

1. bucket (driver): the window's refunds and sessions are streamed once out of the window state
   and written as one Arrow IPC file per shard and table into the exchange; the orders of V are
   written a shard at a time, for executors outside this process;
2. sum (executor, one task per shard): `shard_sums` reads its shard's files (in this process, its
   orders straight from the state), computes the per-shop sums and per-item counts with the
   same Polars functions whatever the executor, and writes them back to the exchange as Parquet;
3. gather (driver): all shards' sums are read back and merged into the `DayFacts` of the run.

Only file locations and a few counts cross between the driver and the tasks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.errors import InputError
from pipelines.exchange import Exchange
from pipelines.executors import IN_PROCESS, Executor, ExecutorOptions, open_executor
from pipelines.load import SCORING_COLUMNS, canonical, column_list, sql_literal
from pipelines.schemas import LOGS
from pipelines.state import (
    BUCKET_COLUMN,
    ORDER_REFUND_COLUMNS,
    ORDER_TRACKING_COLUMNS,
    SHOP_BUCKETS,
    TRACKING_BOOKKEEPING,
    shop_bucket,
)
from scoring.activity import shop_activity
from scoring.daily import DayFacts
from scoring.facts import refund_facts, session_facts, window_order_facts
from scoring.product import item_counts, merge_item_counts
from scoring.window import Window

# Orders of V per scoring shard when the shard count is chosen automatically.
ORDERS_PER_SHARD = 3_000_000
# Rows streamed out of DuckDB at a time while bucketing: memory stays at about a batch.
SHARD_BATCH_ROWS = 1_000_000
INPUTS = ("orders", "refunds", "cs_sessions")
MAX_SHARDS = SHOP_BUCKETS  # beyond it, shards would be empty


def auto_shards(con: duckdb.DuckDBPyConnection) -> int:
    """Enough shards that each holds about `ORDERS_PER_SHARD` current orders."""
    orders = con.sql("SELECT count(*) FROM current_orders").fetchall()[0][0]
    return max(1, math.ceil(orders / ORDERS_PER_SHARD))


@dataclass(frozen=True)
class ShardTask:
    """What one shard task needs: its number, the shard count, the run's exchange, the window."""

    shard: int
    shards: int
    exchange: Exchange
    window: Window


@dataclass(frozen=True)
class ShardDone:
    """What a shard task reports back: its row counts and how long it took."""

    shard: int
    orders_v: int
    shops: int
    items: int
    seconds: float


@dataclass(frozen=True)
class FactsReport:
    """The facts stage for the manifest: which executor, how many shards, what each one did."""

    executor: str
    shards: list[ShardDone]

    def to_dict(self) -> dict:
        seconds = [s.seconds for s in self.shards]
        return {
            "executor": self.executor,
            "shards": len(self.shards),
            "orders_v_per_shard_max": max(s.orders_v for s in self.shards),
            "shard_seconds_max": round(max(seconds), 4),
            "shard_seconds_total": round(sum(seconds), 4),
        }


def part_name(shard: int, suffix: str) -> str:
    return f"part-{shard:05d}.{suffix}"


def shard_buckets(shard: int, shards: int) -> tuple[int, int]:
    """The first and last bucket of a shard: the `b` with `b * shards // SHOP_BUCKETS == shard`."""
    first = -(-shard * SHOP_BUCKETS // shards)
    return first, -(-(shard + 1) * SHOP_BUCKETS // shards) - 1


def shard_of(shards: int) -> str:
    """SQL for the shard of a row's `shop_id` among `shards`."""
    return f"CAST({shop_bucket()} AS INTEGER) * {shards} // {SHOP_BUCKETS}"


def check_shards(shards: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"--shards {shards}: must be between 1 and {MAX_SHARDS}")


def window_queries(window: Window) -> dict[str, str]:
    """The rows of the window state scoring reads: orders of V, refunds and sessions."""
    start, cutoff = sql_literal(window.start), sql_literal(window.cutoff)

    def in_window(column: str) -> str:
        return f"({column} >= {start} AND {column} < {cutoff})"

    def scoring(log: str) -> str:
        return column_list(SCORING_COLUMNS[log])

    return {
        "orders": f"SELECT * EXCLUDE ({', '.join((*TRACKING_BOOKKEEPING, BUCKET_COLUMN))}) "
        f"FROM order_facts WHERE {in_window('paid_at')} AND NOT is_abnormal",
        "refunds": f"SELECT {scoring('refunds')} FROM current_refunds WHERE NOT is_abnormal AND "
        f"({in_window('requested_at')} OR {in_window('escalated_at')})",
        "cs_sessions": f"SELECT {scoring('cs_sessions')} FROM current_cs_sessions "
        f"WHERE {in_window('started_at')}",
    }


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


def shard_orders_query(window: Window, shard: int, shards: int) -> str:
    """The orders of V of one shard: a scan of its buckets' row groups of `order_facts`."""
    first, last = shard_buckets(shard, shards)
    return f"{window_queries(window)['orders']} AND {BUCKET_COLUMN} BETWEEN {first} AND {last}"


def bucket_window(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    shards: int,
    exchange: Exchange,
    orders: bool = True,
) -> None:
    """Write the window's refunds and sessions into the exchange, per shard, and the orders of V
    too unless `orders` is False (tasks in this process read them from the state)."""
    check_shards(shards)
    queries = window_queries(window)
    if orders:
        for shard in range(shards):
            query = shard_orders_query(window, shard, shards)
            reader = con.sql(query).to_arrow_reader(SHARD_BATCH_ROWS)
            part = part_name(shard, "arrow")
            with exchange.arrow_writer(_polars_schema(reader.schema), "orders", part) as writer:
                for batch in reader:
                    writer.write_table(pl.from_arrow(batch).to_arrow())
    for name in ("refunds", "cs_sessions"):
        bucket_by_shard(con, queries[name], shards, exchange, name)


def sum_shards(
    exchange: Exchange,
    window: Window,
    shards: int,
    executor: ExecutorOptions,
    state: duckdb.DuckDBPyConnection | None = None,
) -> tuple[DayFacts, FactsReport]:
    """Run `shard_sums` for every shard on `executor`, then gather the sums into the facts."""
    with open_executor(executor, shards) as runner:
        done = map_shards(runner, exchange, window, shards, state)
    return gather(exchange, window, shards), FactsReport(runner.name, done)


def map_shards(
    runner: Executor,
    exchange: Exchange,
    window: Window,
    shards: int,
    state: duckdb.DuckDBPyConnection | None = None,
) -> list[ShardDone]:
    """`shard_sums` of every shard, on an executor that is already running.

    With `state` (tasks in this process only), each task reads its orders of V from it.
    """
    tasks = [ShardTask(shard, shards, exchange, window) for shard in range(shards)]
    return runner.map(shard_sums if state is None else partial(state_shard_sums, state), tasks)


def orders_source(
    con: duckdb.DuckDBPyConnection, executor: ExecutorOptions
) -> duckdb.DuckDBPyConnection | None:
    """Where the shard tasks get their orders of V: tasks in this process read them from the
    state `con` (no copy); tasks in other processes or on Ray cannot share the connection, so
    the orders go to them as files (None)."""
    return con if executor.in_process else None


def window_facts(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    shards: int,
    exchange_base: str,
    executor: ExecutorOptions = IN_PROCESS,
) -> tuple[DayFacts, FactsReport]:
    """Per-shop sums and per-item counts for `window`: bucket, sum per shard, gather.

    Tasks in this process read their orders of V from `con`; others get them as files. The
    nightly run does the same three steps itself, and closes or shrinks the state between the
    first two so that DuckDB's memory is free while the shards are summed.
    """
    state = orders_source(con, executor)
    with shard_exchange(exchange_base) as exchange:
        bucket_window(con, window, shards, exchange, orders=state is None)
        return sum_shards(exchange, window, shards, executor, state)


def bucket_by_shard(
    con: duckdb.DuckDBPyConnection, query: str, shards: int, exchange: Exchange, name: str
) -> None:
    """Stream a query's rows into one Arrow IPC file per shard: `<exchange>/<name>/part-<k>`.

    One scan, batches of `SHARD_BATCH_ROWS`, each split by shard and appended to its shard's
    file as a row group. Every shard gets a file, empty or not, so a task never has to guess a
    schema (the file carries it).
    """
    reader = con.sql(f"SELECT *, {shard_of(shards)} AS shard FROM ({query})").to_arrow_reader(
        SHARD_BATCH_ROWS
    )
    schema = _polars_schema(reader.schema.remove(reader.schema.get_field_index("shard")))
    writers = [exchange.arrow_writer(schema, name, part_name(s, "arrow")) for s in range(shards)]
    try:
        for batch in reader:
            parts = pl.from_arrow(batch).partition_by("shard", as_dict=True, include_key=False)
            for (shard,), part in parts.items():
                writers[shard].write_table(part.to_arrow())
    finally:
        for writer in writers:
            writer.close()


def _polars_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow types Polars gives these columns: the files hold them, so neither side
    converts (about 1 s of 9 at M)."""
    return pl.from_arrow(schema.empty_table()).to_arrow().schema


def state_shard_sums(state: duckdb.DuckDBPyConnection, task: ShardTask) -> ShardDone:
    """`shard_sums` with the shard's orders of V read from the window state (in process only).

    Its seconds include the read, as a task reading files counts reading them.
    """
    clock = time.perf_counter()
    query = shard_orders_query(task.window, task.shard, task.shards)
    done = shard_sums(task, pl.from_arrow(state.sql(query).to_arrow_table()))
    return replace(done, seconds=time.perf_counter() - clock)


def shard_sums(task: ShardTask, orders: pl.DataFrame | None = None) -> ShardDone:
    """One shard's per-shop sums and per-item counts, read from and written to the exchange.

    The task of every executor: it imports nothing from the driver's memory, so it runs the same
    in this process, in a worker process or on a Ray node. `orders`, when given, are the
    shard's orders of V (read from the state by a task in this process).
    """
    clock = time.perf_counter()
    part = part_name(task.shard, "arrow")
    frames = {
        name: pl.from_arrow(task.exchange.read_arrow(name, part))
        for name in INPUTS
        if name != "orders" or orders is None
    }
    if orders is not None:
        frames["orders"] = orders
    # held once: `collect_all` would compute it for each of the two results
    orders_v = window_order_facts(_orders_v(frames["orders"]), task.window).collect().lazy()
    refunds = canonical(frames["refunds"], LOGS["refunds"])
    sessions = canonical(frames["cs_sessions"], LOGS["cs_sessions"])
    activity = shop_activity(
        orders_v,
        refund_facts(refunds, task.window),
        session_facts(sessions, task.window),
        task.window,
    )
    shop_sums, items = pl.collect_all([activity, item_counts(orders_v, task.window.cutoff)])
    sums = part_name(task.shard, "parquet")
    task.exchange.write_parquet(shop_sums.to_arrow(), "activity", sums)
    task.exchange.write_parquet(items.to_arrow(), "items", sums)
    return ShardDone(
        shard=task.shard,
        orders_v=frames["orders"].height,
        shops=shop_sums.height,
        items=items.height,
        seconds=time.perf_counter() - clock,
    )


def gather(exchange: Exchange, window: Window, shards: int) -> DayFacts:
    """All shards' sums as the run's facts; an item sold under shops of two shards is merged."""

    def read_all(name: str) -> pl.DataFrame:
        parts = [exchange.read_parquet(name, part_name(s, "parquet")) for s in range(shards)]
        return pl.concat([pl.from_arrow(part) for part in parts], how="vertical_relaxed")

    activity = read_all("activity").sort("shop_id")
    items = read_all("items")
    if shards > 1:
        items = merge_item_counts(items.lazy()).collect()
    return DayFacts(window, items.lazy(), activity.lazy())


def _orders_v(frame: pl.DataFrame) -> pl.LazyFrame:
    """Orders of V of one shard with their tracking and refund rows, canonical types."""
    per_order = {
        name: duck_type
        for name, duck_type in {**ORDER_TRACKING_COLUMNS, **ORDER_REFUND_COLUMNS}.items()
        if name not in TRACKING_BOOKKEEPING
    }
    instants = [name for name, duck_type in per_order.items() if duck_type == "TIMESTAMP"]
    return canonical(frame, LOGS["orders"]).with_columns(
        pl.col(instants).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
