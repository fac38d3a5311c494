"""The window's totals, kept in the window state and moved by the rows that changed (issue 3).

Scoring turns every fact row into a contribution (`scoring.activity`): the Int64 amounts it adds
to its shop's sums, its category's amount and its item's counts, and until when they hold. The
state keeps, beside the current state of the logs:

    contrib_<log>      one row per fact row that counts, or may count at a later cutoff
    totals_<name>      the sums of those contributions per shop, (shop, category), item
    pending_<log>      keys whose rows a sync changed since the contributions were computed
    meta sums_window   the window they were computed for (absent: compute them all)

A nightly run recomputes the contributions of the *changed* rows only: the pending keys, the
rows whose `recheck_at` the new cutoff has reached, and the rows whose `leaves_at` the new start
has passed. It subtracts their old contributions from the totals and adds their new ones.
All amounts are integers, so the totals are exactly the sums a from-scratch run computes, in
whatever order rows were added and removed. A run for an earlier window, a state whose sums
were never computed, or a sync that loaded a whole log computes them all (`full`).

The contributions themselves are computed by the shard tasks (pipelines/shards.py); this module
only chooses the rows, and adds and subtracts columns of integers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.load import sql_literal
from scoring.activity import (
    ITEM_TERMS,
    ORDER_KEYS,
    REFUND_KEYS,
    SESSION_KEYS,
    VALIDITY,
    Totals,
)
from scoring.window import Window

SUMS_WINDOW = "sums_window"
PENDING_LOGS = ("orders", "refunds", "cs_sessions")


@dataclass(frozen=True)
class Aggregate:
    """A totals table: contributions summed per `group`; `counted` says a row is not empty."""

    table: str
    group: tuple[str, ...]
    counted: str  # SQL over the totals row: false when every sum is 0


@dataclass(frozen=True)
class Source:
    """One fact table: where its rows are in the state, and the totals its contributions feed."""

    log: str  # also its name in the exchange
    key: str
    keys: tuple[str, ...]  # the contribution's columns that are not summed
    rows: str  # the state table holding its current rows
    aggregates: tuple[Aggregate, ...]

    @property
    def contrib(self) -> str:
        return f"contrib_{self.log}"

    def full_rows(self, window: Window) -> str:
        """A superset of the rows that count or may count later (none is in the future)."""
        start = sql_literal(window.start)
        match self.log:
            case "orders":
                # paid_at <= updated_at < cutoff for every kept version (2.5), so V is these
                return f"SELECT * FROM {self.rows} WHERE paid_at >= {start} AND NOT is_abnormal"
            case "refunds":
                return (
                    f"SELECT * FROM {self.rows} WHERE NOT is_abnormal AND "
                    f"(requested_at >= {start} OR escalated_at >= {start})"
                )
            case _:
                return f"SELECT * FROM {self.rows} WHERE started_at >= {start}"


SOURCES = (
    Source(
        "orders",
        "order_id",
        ORDER_KEYS,
        "order_facts",
        (
            Aggregate("totals_shop_orders", ("shop_id",), ""),
            Aggregate("totals_category_amounts", ("shop_id", "category_id"), "orders <> 0"),
            Aggregate("totals_items", ("item_id", "shop_id", "category_id"), "paid_orders <> 0"),
        ),
    ),
    Source(
        "refunds",
        "refund_id",
        REFUND_KEYS,
        "current_refunds",
        (Aggregate("totals_shop_refunds", ("shop_id",), ""),),
    ),
    Source(
        "cs_sessions",
        "session_id",
        SESSION_KEYS,
        "current_cs_sessions",
        (Aggregate("totals_shop_sessions", ("shop_id",), ""),),
    ),
)


@dataclass(frozen=True)
class SumsPlan:
    """What a run recomputes: every contribution (`full`) or those of the changed rows."""

    window: Window
    full: bool
    reason: str | None = None  # why everything is recomputed

    def changed(self, source: Source) -> str:
        """The keys whose contributions an incremental run recomputes, once per connection.

        A temporary table, so that bucketing and `apply` see the same keys without deciding
        them twice.
        """
        table = f"changed_{source.log}"
        start, cutoff = sql_literal(self.window.start), sql_literal(self.window.cutoff)
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {table} AS SELECT k FROM pending_{source.log} "
            f"UNION SELECT {source.key} FROM {source.contrib} "
            f"WHERE recheck_at <= {cutoff} OR leaves_at < {start}"
        )

    def rows(self, con: duckdb.DuckDBPyConnection, source: Source) -> str:
        """The state rows whose contributions this run computes."""
        if self.full:
            return source.full_rows(self.window)
        con.sql(self.changed(source))
        return (
            f"SELECT * FROM {source.rows} WHERE {source.key} IN "
            f"(SELECT k FROM changed_{source.log})"
        )


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The pending key sets (the contribution and totals tables are made by `apply`)."""
    for log in PENDING_LOGS:
        con.sql(f"CREATE TABLE IF NOT EXISTS pending_{log} (k BIGINT)")


def mark_pending(con: duckdb.DuckDBPyConnection, log: str, keys: str) -> None:
    """Remember keys (a query) whose rows changed, inside the sync's transaction."""
    con.sql(f"INSERT INTO pending_{log} {keys}")


def forget_sums(con: duckdb.DuckDBPyConnection) -> None:
    """The next run computes every contribution (a sync loaded a log from nothing)."""
    con.sql(f"DELETE FROM meta WHERE name = {sql_literal(SUMS_WINDOW)}")


def _window_text(window: Window) -> str:
    return f"{window.start.isoformat()}|{window.cutoff.isoformat()}"


def plan_sums(con: duckdb.DuckDBPyConnection, window: Window) -> SumsPlan:
    """Full when the sums were never computed or were computed for a later window."""
    stored = con.sql(f"SELECT value FROM meta WHERE name = {sql_literal(SUMS_WINDOW)}").fetchall()
    if not stored:
        return SumsPlan(window, True, "no totals in the state")
    start, cutoff = stored[0][0].split("|")
    if start > window.start.isoformat() or cutoff > window.cutoff.isoformat():
        return SumsPlan(window, True, "the window moved back")
    return SumsPlan(window, False)


def _sum_columns(con: duckdb.DuckDBPyConnection, source: Source) -> list[str]:
    skip = {*source.keys, *VALIDITY, *ITEM_TERMS}
    names = [row[0] for row in con.sql(f"DESCRIBE {source.contrib}").fetchall()]
    return [n for n in names if n not in skip]


def _terms(con: duckdb.DuckDBPyConnection, source: Source, aggregate: Aggregate) -> dict[str, str]:
    """Each totals column and the contribution expression it sums."""
    if aggregate.table == "totals_category_amounts":
        return {"orders": "1", "amount": "CAST(amount_cents AS HUGEINT)"}
    if aggregate.table == "totals_items":
        return {"paid_orders": "1", "problem_orders": "problem_orders"}
    return {c: f'"{c}"' for c in _sum_columns(con, source)}


def _summed(terms: dict[str, str], signed: bool) -> str:
    def total(name: str, expr: str) -> str:
        value = f"sign * ({expr})" if signed else expr
        kind = "HUGEINT" if name == "amount" else "BIGINT"
        return f'CAST(SUM({value}) AS {kind}) AS "{name}"'

    return ", ".join(total(name, expr) for name, expr in terms.items())


def _not_empty(aggregate: Aggregate, terms: dict[str, str]) -> str:
    if aggregate.counted:
        return aggregate.counted
    return " OR ".join(f'"{name}" <> 0' for name in terms)


def apply(
    con: duckdb.DuckDBPyConnection,
    plan: SumsPlan,
    parts: Callable[[str], Iterator[pa.Table]],
) -> None:
    """Swap the changed rows' contributions for the new ones and move the totals.

    `parts(log)` yields the new contributions of one log a part at a time (a shard's file), so
    a full recompute never holds the window's contributions in Python. One transaction: a run
    that fails here leaves the previous contributions, totals and pending keys, and the next run
    recomputes the same rows.
    """
    con.sql("BEGIN TRANSACTION")
    try:
        for source in SOURCES:
            _apply_source(con, plan, source, parts(source.log))
        con.sql(f"DELETE FROM meta WHERE name = {sql_literal(SUMS_WINDOW)}")
        con.sql(
            f"INSERT INTO meta VALUES ({sql_literal(SUMS_WINDOW)}, "
            f"{sql_literal(_window_text(plan.window))})"
        )
        con.sql("COMMIT")
    except BaseException:
        con.sql("ROLLBACK")
        raise
    finally:
        for source in SOURCES:
            for table in ("changed", "new", "old", "delta", "merged"):
                con.sql(f"DROP TABLE IF EXISTS temp.{table}_{source.log}")


def _insert_parts(
    con: duckdb.DuckDBPyConnection, table: str, parts: Iterator[pa.Table], temporary: bool
) -> None:
    """(Re)create `table` from the parts, inserted one at a time."""
    create = f"CREATE OR REPLACE {'TEMP ' if temporary else ''}TABLE"
    for i, part in enumerate(parts):
        con.register("part_rows", part)
        if i == 0:
            con.sql(f"{create} {table} AS SELECT * FROM part_rows")
        else:
            con.sql(f"INSERT INTO {table} BY NAME SELECT * FROM part_rows")
        con.unregister("part_rows")


def _apply_source(
    con: duckdb.DuckDBPyConnection, plan: SumsPlan, source: Source, parts: Iterator[pa.Table]
) -> None:
    exists = con.sql(
        f"SELECT count(*) FROM duckdb_tables() WHERE table_name = {sql_literal(source.contrib)} "
        "AND NOT temporary"
    ).fetchall()[0][0]
    if plan.full or not exists:
        _insert_parts(con, source.contrib, parts, temporary=False)
        for aggregate in source.aggregates:
            _rebuild_totals(con, source, aggregate)
    else:
        new, old = f"new_{source.log}", f"old_{source.log}"
        _insert_parts(con, new, parts, temporary=True)
        con.sql(plan.changed(source))
        changed = f"{source.key} IN (SELECT k FROM changed_{source.log})"
        con.sql(
            f"CREATE OR REPLACE TEMP TABLE {old} AS SELECT * FROM {source.contrib} WHERE {changed}"
        )
        con.sql(f"DELETE FROM {source.contrib} WHERE {changed}")
        con.sql(f"INSERT INTO {source.contrib} BY NAME SELECT * FROM {new}")
        for aggregate in source.aggregates:
            _move_totals(con, source, aggregate, new, old)
    con.sql(f"DELETE FROM pending_{source.log}")


def _rebuild_totals(con: duckdb.DuckDBPyConnection, source: Source, aggregate: Aggregate) -> None:
    terms = _terms(con, source, aggregate)
    group = ", ".join(aggregate.group)
    con.sql(
        f"CREATE OR REPLACE TABLE {aggregate.table} AS SELECT {group}, {_summed(terms, False)} "
        f"FROM {source.contrib} GROUP BY {group}"
    )


def _move_totals(
    con: duckdb.DuckDBPyConnection, source: Source, aggregate: Aggregate, new: str, old: str
) -> None:
    """totals += sums of the new contributions - sums of the old ones, per group."""
    terms = _terms(con, source, aggregate)
    group = ", ".join(aggregate.group)
    delta, merged = f"delta_{source.log}", f"merged_{source.log}"
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE {delta} AS SELECT {group}, {_summed(terms, True)} FROM "
        f"(SELECT 1 AS sign, * FROM {new} UNION ALL BY NAME SELECT -1 AS sign, * FROM {old}) "
        f"GROUP BY {group}"
    )
    plain = {name: f'"{name}"' for name in terms}
    con.sql(
        f"CREATE OR REPLACE TEMP TABLE {merged} AS SELECT {group}, {_summed(plain, False)} FROM "
        f"(SELECT * FROM {aggregate.table} SEMI JOIN {delta} USING ({group}) "
        f"UNION ALL BY NAME SELECT * FROM {delta}) GROUP BY {group}"
    )
    matches = " AND ".join(f"{aggregate.table}.{g} = {delta}.{g}" for g in aggregate.group)
    con.sql(f"DELETE FROM {aggregate.table} USING {delta} WHERE {matches}")
    con.sql(
        f"INSERT INTO {aggregate.table} BY NAME SELECT * FROM {merged} "
        f"WHERE {_not_empty(aggregate, terms)}"
    )


def read_totals(con: duckdb.DuckDBPyConnection) -> Totals:
    """The totals tables as Polars frames (collected: they are small beside the window)."""

    def frame(table: str) -> pl.LazyFrame:
        return pl.from_arrow(con.sql(f"SELECT * FROM {table}").to_arrow_table()).lazy()

    return Totals(
        shop_orders=frame("totals_shop_orders"),
        shop_refunds=frame("totals_shop_refunds"),
        shop_sessions=frame("totals_shop_sessions"),
        category_amounts=frame("totals_category_amounts").with_columns(
            pl.col("amount").cast(pl.Int128)
        ),
        items=frame("totals_items"),
    )
