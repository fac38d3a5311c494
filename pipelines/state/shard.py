"""One shard's night: fold the rows routed to it into its files, and return its sums.

A shard holds the orders whose `order_id` routes to it, with their tracking events and refunds,
and the sessions whose `session_id` does. Its files, each listed in the state's manifest under a
key (a date) so that the window moves by dropping keys:

    orders/<paid date>      the current version of every order paid in the window, with its
                            tracking facts (`scoring.facts.tracking_facts`); a night adds a
                            delta file to each paid date it changed (newest row of an order wins,
                            `_gone` marks an order that left), compacted after a few
    retired/<updated date>  the current version of orders paid before the window, kept only
                            while a later-arriving older version could otherwise be taken for
                            current (while updated_at is in the window)
    events/<dt>             the good tracking events of raw partition dt, sorted by order, read
                            only to recompute an order whose events cannot be folded
    orphans/<dt>            orders that have stored events but no order row (yet, or any more)
    refunds/<dt>            the good refund versions of raw partition dt
    sessions/<dt>           the good sessions of raw partition dt
    refunds_current/<dt>    the current refunds (2.5) whose version came in partition dt,
                            sorted by order_id, as delta files like the orders'
    refund_days/<date>      per shop, the sums of the current refunds requested (and of the
                            help events escalated) on that local date
    session_days/<date>     per shop, the sums of the counted sessions started on that date

    pending/ids             the orders whose contribution could still move with the cutoff
    held/counts             how many orders the shard holds, and how many have events

A night costs what its rows cost. It reads, of the order rows, only those it touches (a new
version, new events, a changed refund, a partition of their events leaving) or that have not
settled, looked up by `order_id` in the date files (sorted by it, so Parquet statistics skip
what cannot hold them), and the dates that leave the window. The new versions and events are
folded into those rows (`merge_tracking`: events that all come after an order's stored events
extend its facts); only an order whose events cannot be folded (out of order, a copy, an
evicted partition, an order arriving after its events) is recomputed from its stored events.
The window's order-side sums are kept by the driver, not recounted: a shard sends only what
tonight changes in them, what the rows it read add at tonight's window less what they added at
last night's. Its other rows have settled (`scoring.settling`) and were not touched, so they
add the same as last night; the orders that have not settled are read again every night (the
pending ones). Order rows carry their refund flags, so what a row adds depends on the row and
the cutoff alone. A refund or a session adds the same once its day is in the window, so their
sums are kept per day (`day_sums_change`): only the keys of tonight's rows and of the partitions
leaving can change which row is current, and the night sets what their current rows add now
against what they added last night.
Every sum is made by `scoring.settling.order_sums` and `scoring.activity.ShopSums`, the
functions a from-scratch computation of the whole window uses.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl

from pipelines.executors.exchange import Exchange
from pipelines.state.appeals import Upheld, read_upheld
from pipelines.state.ingest import inbox_part, log_schema
from pipelines.state.store import StateStore
from scoring.activity import refund_days, session_days
from scoring.appeals import Subject, mark_upheld
from scoring.contract import LOGS
from scoring.current import current_rows
from scoring.daily import part_sums
from scoring.facts import (
    later_events_only,
    merge_tracking,
    order_refund_flags,
    tracking_facts,
    window_order_facts,
)
from scoring.settling import ORDER_SUMS, net_sums, order_sums, settled, sum_changes
from scoring.window import Window, local_date

ORDERS = LOGS["orders"]
ORDER_COLUMNS = [*ORDERS.column_names, "dt"]
TRACKING_SCHEMA: dict[str, pl.DataType] = {
    "pickup_at": pl.Datetime("us", "UTC"),
    "has_exception": pl.Boolean,
    "delivered_at": pl.Datetime("us", "UTC"),
    "delivered_at_door": pl.Boolean,
    "longest_trail_gap_us": pl.Int64,
    "last_trail_event_at": pl.Datetime("us", "UTC"),
    "last_event_at": pl.Datetime("us", "UTC"),
    # the raw partitions the order's events came from: an order with an event of a partition
    # that left the window is recomputed from the events that stay
    "first_event_dt": pl.Date,
    "last_event_dt": pl.Date,
}
TRACKING = list(TRACKING_SCHEMA)
# what the order's current refunds say (`scoring.facts.order_refund_flags`): with them on the
# row, what an order adds to the sums depends on its row and the cutoff alone
REFUND_FLAGS_SCHEMA: dict[str, pl.DataType] = {
    "has_quality_refund": pl.Boolean,
    "first_problem_requested_at": pl.Datetime("us", "UTC"),
}
REFUND_FLAGS = list(REFUND_FLAGS_SCHEMA)
# an upheld appeal removes the row (13.2), as of the night the row was written: kept on the
# row like the refund flags, and set anew on every row a night reads
APPEAL_FLAG = "appeal_upheld"
GONE = "_gone"
ORDER_ROW_SCHEMA = {
    **log_schema("orders"),
    **TRACKING_SCHEMA,
    **REFUND_FLAGS_SCHEMA,
    APPEAL_FLAG: pl.Boolean,
    GONE: pl.Boolean,
}
# orders with stored events and no order row: the partitions their events span
ORPHAN_SCHEMA = {"order_id": pl.Int64, "first_dt": pl.Date, "dt": pl.Date}
RETIRED_SCHEMA = {**log_schema("orders"), GONE: pl.Boolean}
# A date's order rows are compacted into one file when a night would give it more files than
# this: reading stays a few files per date, while most nights write only the rows they changed.
MAX_FILES_PER_DATE = 4
# Keyed files are sorted by order_id in row groups of this many rows: a lookup of the night's
# orders skips the row groups whose order_id range holds none of them.
ROW_GROUP = 32_768
# What a shard sends the driver: what its night changes in each of the window's sums, which the
# driver keeps (`scoring.settling.KEPT_SUMS`)
SUMS = ("orders", "refunds", "sessions", "categories", "items")
PENDING = "pending"  # table of the orders not settled at the last cutoff (key `ids`)
HELD = "held"  # table counting the orders, refunds and sessions the shard holds (key `counts`)
SESSION_DAYS = "session_days"  # per shop, the sums of the sessions started on the key's day
REFUND_DAYS = "refund_days"  # per shop, the sums of the refunds requested or escalated that day
REFUNDS_CURRENT = "refunds_current"  # the current refunds, under the dt of their version
REFUND_ROW_SCHEMA = {**log_schema("refunds"), APPEAL_FLAG: pl.Boolean, GONE: pl.Boolean}

Files = dict[str, dict[str, dict[str, int]]]  # table -> key -> file -> size


@dataclass(frozen=True)
class ShardTask:
    """What one shard's night needs; small, so any executor can ship it."""

    shard: int
    state: str  # the state's location
    files: Files  # this shard's files in the committed manifest
    inbox: str  # the run's exchange, with this night's rows routed to the shard
    window: Window
    version: int  # the version this night commits
    previous: Window | None = None  # the window the stored sums were counted for


@dataclass(frozen=True)
class ShardDone:
    """What a shard reports: its new file list and what the night did."""

    shard: int
    files: Files
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


def shard_night(task: ShardTask) -> ShardDone:
    """Fold the shard's new rows into its files, write what changed, and write its sums."""
    clock = time.perf_counter()
    night = ShardNight(task)
    files = night.run()
    return ShardDone(task.shard, files, round(time.perf_counter() - clock, 4), night.counts)


class ShardNight:
    """The steps of `shard_night`, each reading like the paragraph of the module docstring."""

    def __init__(self, task: ShardTask) -> None:
        self.task = task
        self.window = task.window
        self.first = task.window.first_date
        self.store = StateStore(task.state)
        self.inbox = Exchange(task.inbox)
        self.files: Files = {table: dict(keys) for table, keys in task.files.items()}
        self.counts: dict[str, int] = {}
        self.counted: dict[str, int] = {}  # per log, the change tonight in its current rows

    @cached_property
    def upheld(self) -> Upheld:
        """Which subjects upheld appeals remove, tonight and last night (the driver's)."""
        return read_upheld(self.inbox)

    # ---------------------------------------------------------------------------------------
    # reading

    def arrived(self, log: str) -> pl.DataFrame:
        """This night's good rows of `log` routed to the shard."""
        table = self.inbox.read_arrow(log, inbox_part(self.task.shard))
        return pl.from_arrow(table).cast(log_schema(log))  # type: ignore[return-value]

    def keys(self, table: str) -> list[str]:
        return sorted(self.files.get(table, {}))

    def read_keyed(
        self,
        table: str,
        schema: dict[str, pl.DataType],
        keys: list[str],
        ids: pl.Series | None = None,
        identity: str = "order_id",
    ) -> pl.DataFrame:
        """The live rows of `table` under `keys`: per key, each row's newest version, the row
        of its `identity` from the newest file that has one.

        Rows carry their key in `_key`; rows marked `_gone` are dropped. With `ids` (sorted),
        only the rows of those orders are read (the files are sorted by order_id).
        """
        parts = []
        for key in keys:
            match = None if ids is None else ("order_id", ids)
            frames = [f.cast(schema) for f in self.store.read(self.files[table][key], match=match)]
            # a row is replaced by any later file's row of its identity: an anti join per file
            # (most dates have one or two files) costs less than a unique over every row
            newer: pl.DataFrame | None = None
            rows = []
            for frame in reversed(frames):
                rows.append(frame if newer is None else frame.join(newer, on=identity, how="anti"))
                replacing = frame.select(identity)
                newer = replacing if newer is None else pl.concat([newer, replacing])
            live = pl.concat(rows).filter(~pl.col(GONE))
            parts.append(live.with_columns(_key=pl.lit(key)))
        if not parts:
            return pl.DataFrame(schema={**schema, "_key": pl.String})
        return pl.concat(parts)

    def read_by_partition(
        self, table: str, schema: dict[str, pl.DataType], match: tuple[str, pl.Series] | None = None
    ) -> pl.DataFrame:
        """Every stored row of a per-partition table whose partition is in the window; with
        `match` (a column and sorted ids), only the rows of those ids."""
        frames = [
            frame.cast(schema)
            for key in self.keys(table)
            if key >= self.first.isoformat()
            for frame in self.store.read(self.files[table][key], match=match)
        ]
        return pl.concat(frames) if frames else pl.DataFrame(schema=schema)

    # ---------------------------------------------------------------------------------------
    # writing

    def write(
        self,
        table: str,
        key: str,
        frame: pl.DataFrame,
        replace: bool = False,
        row_group_size: int | None = None,
    ) -> None:
        name = self.store.new_file(self.task.shard, table, key, self.task.version)
        size = self.store.write(frame, name, row_group_size)
        keyed = self.files.setdefault(table, {})
        keyed[key] = {name: size} if replace else {**keyed.get(key, {}), name: size}

    def drop_keys_before(self, table: str, first: str) -> None:
        for key in [k for k in self.files.get(table, {}) if k < first]:
            del self.files[table][key]

    def write_by_partition(self, table: str, rows: pl.DataFrame, sort_by: str) -> None:
        """A night's rows of a per-partition table, one file per raw partition they came from."""
        for (day,), part in rows.partition_by("dt", as_dict=True).items():
            self.write(table, day.isoformat(), part.sort(sort_by), row_group_size=ROW_GROUP)

    def read_before(self, table: str, first: str, columns: list[str]) -> pl.DataFrame:
        """`columns` of a per-partition table's rows under the keys that leave the window."""
        frames = [
            frame
            for key in self.keys(table)
            if key < first
            for frame in self.store.read(self.files[table][key], columns=columns)
        ]
        return pl.concat(frames) if frames else pl.DataFrame(schema={c: pl.Int64 for c in columns})

    def write_keyed_changes(
        self, table: str, changed: pl.DataFrame, schema: dict, identity: str = "order_id"
    ) -> None:
        """Each key's changed rows (and `_gone` markers) as a delta file sorted by order_id, or
        the key compacted.

        A key that would have more than `MAX_FILES_PER_DATE` files is read whole and written
        as one file of its live rows.
        """
        for (key,), delta in changed.partition_by("_key", as_dict=True).items():
            if len(self.files.get(table, {}).get(key, {})) + 1 > MAX_FILES_PER_DATE:
                stored = self.read_keyed(table, schema, [key], identity=identity)
                rows = pl.concat(
                    [
                        stored.join(delta.select(identity), on=identity, how="anti").select(
                            list(schema)
                        ),
                        delta.filter(~pl.col(GONE)).select(list(schema)),
                    ]
                )
                self.write(
                    table, key, rows.sort("order_id"), replace=True, row_group_size=ROW_GROUP
                )
            else:
                self.write(
                    table,
                    key,
                    delta.select(list(schema)).sort("order_id"),
                    row_group_size=ROW_GROUP,
                )

    # ---------------------------------------------------------------------------------------
    # the night

    def run(self) -> Files:
        first = self.first.isoformat()
        new_orders = self.arrived("orders")
        new_events = self.arrived("logistics")
        # what leaves the window tonight: its orders are looked up with the night's
        events_leaving = self.read_before("events", first, ["order_id"])
        by_refund, refunds_changed = self.store_refunds(first)
        by_session = self.store_sessions(first)

        pending = self.read_single(PENDING, "ids")
        touched = pl.concat(
            [
                new_orders.select("order_id"),
                new_events.select("order_id"),
                refunds_changed,
                events_leaving,
                self.upheld.changed("order").alias("order_id").to_frame(),
                *([pending.select("order_id")] if pending is not None else []),
            ]
        ).unique()
        keys = self.keys("orders")
        stored = pl.concat(
            [
                self.read_keyed(
                    "orders",
                    ORDER_ROW_SCHEMA,
                    [k for k in keys if k >= first],
                    touched["order_id"].sort(),
                ),
                self.read_keyed("orders", ORDER_ROW_SCHEMA, [k for k in keys if k < first]),
            ]
        )
        orders, left, entered = self.fold_orders(new_orders, stored)
        orders, orphans_now = self.fold_events(orders, new_events, left, entered)
        orders = self.refund_flags(orders, pl.concat([refunds_changed, entered]))
        orders = self.appeal_flags(orders)
        self.write_orders(orders)
        self.write_by_partition("events", new_events, "order_id")
        self.drop_keys_before("events", first)
        if orphans_now.height:
            self.write_by_partition("orphans", orphans_now, "order_id")
        self.drop_keys_before("orphans", first)

        live = orders.filter(~pl.col(GONE)).drop(GONE, "_key", "_changed")
        by_order = self.order_changes(live, stored.drop(GONE, "_key"))
        sums, items = part_sums(by_order, by_refund, by_session)
        self.write_sums({**sums.frames(), "items": items})
        self.count_held(live, stored)
        return self.files

    # ---------------------------------------------------------------------------------------
    # refunds and sessions

    def store_refunds(self, first: str) -> tuple[pl.LazyFrame, pl.DataFrame]:
        """Store tonight's refund versions; return what the night changes in the window's
        refund sums, and the orders whose current refunds changed (their flags may move).

        The current refunds are also kept whole (`refunds_current/<dt>`, sorted by order_id) for
        the flags of the orders that need them (`refund_flags`): a night writes the rows that
        became current and a marker where one stopped being current.
        """
        before, after = self.current_changes("refunds", "refunds", first, "refund")
        change = self.day_sums_change(REFUND_DAYS, "refunds", refund_days, before, after)
        columns = list(REFUND_ROW_SCHEMA)[:-1]
        stopped = before.join(after, on=columns, how="anti", nulls_equal=True)
        became = after.join(before, on=columns, how="anti", nulls_equal=True)
        dated = pl.col("dt").cast(pl.String).alias("_key")
        new_rows = became.with_columns(dated, pl.lit(False).alias(GONE))
        markers = (
            stopped.with_columns(dated, pl.lit(True).alias(GONE))
            .join(new_rows.select("refund_id", "_key"), on=["refund_id", "_key"], how="anti")
            .filter(pl.col("_key") >= first)
        )
        self.drop_keys_before(REFUNDS_CURRENT, first)
        changed = pl.concat([new_rows, markers])
        if changed.height:
            self.write_keyed_changes(
                REFUNDS_CURRENT, changed, REFUND_ROW_SCHEMA, identity="refund_id"
            )
        orders = pl.concat([stopped.select("order_id"), became.select("order_id")]).unique()
        return change, orders

    def store_sessions(self, first: str) -> pl.LazyFrame:
        """Store tonight's sessions; return what the night changes in the window's session sums."""
        before, after = self.current_changes("sessions", "cs_sessions", first, "session")
        return self.day_sums_change(SESSION_DAYS, "sessions", session_days, before, after)

    def current_changes(
        self, table: str, log: str, first: str, subject: Subject
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Store tonight's rows of `log`; return the current rows (2.5), as of last night and of
        tonight, of the keys that tonight's rows, the partitions leaving the window or a moved
        appeal can change, each marked with whether an upheld appeal removed it then.

        Only those keys can change which of their rows is current, or whether it counts; their
        stored rows are looked up by key in the partitions that stay. Last night's current rows
        are the best of the stored and leaving ones, tonight's the best of the stored and new
        ones.
        """
        schema, columns = LOGS[log], log_schema(log)
        key = schema.key
        version = schema.version_column if schema.change_log else None
        new = self.arrived(log)
        leaving = self.read_before(table, first, list(columns)).cast(columns)
        appealed = self.upheld.changed(subject).alias(key).to_frame()
        wanted = pl.concat([new.select(key), leaving.select(key), appealed])[key].unique().sort()
        stored = self.read_by_partition(table, columns, (key, wanted))
        before = current_rows(pl.concat([leaving, stored]), key, version, schema.column_names)
        after = current_rows(pl.concat([stored, new]), key, version, schema.column_names)
        before = mark_upheld(before.lazy(), self.upheld.before.lazy(), subject).collect()
        after = mark_upheld(after.lazy(), self.upheld.now.lazy(), subject).collect()
        self.write_by_partition(table, new, key)
        self.drop_keys_before(table, first)
        self.counted[log] = after.height - before.height
        return before, after

    def day_sums_change(
        self,
        days_table: str,
        total: str,
        by_day: Callable[[pl.LazyFrame, Window], pl.LazyFrame],
        before: pl.DataFrame,
        after: pl.DataFrame,
    ) -> pl.LazyFrame:
        """Keep the sums per day (`days_table/<day>`) of the changed rows; return what the
        night changes in the window's sums of `total`.

        A row adds the same to its day's sums whatever the window, once its day is in it, so the
        window's sums are those of its days. The change: what tonight's rows change in the days
        of the window, plus the days that enter it, less the days that leave it.
        """
        window, previous = self.window, self.task.previous
        changes = sum_changes(
            days_table, [by_day(after.lazy(), window)], [by_day(before.lazy(), window)]
        ).collect()
        first, last = self.first.isoformat(), window.run_date.isoformat()

        def was_in(day: str) -> bool:
            return previous is not None and (
                previous.first_date.isoformat() <= day <= previous.run_date.isoformat()
            )

        days = self.keys(days_table)
        entering = [d for d in days if first <= d <= last and not was_in(d)]
        leaving = [d for d in days if was_in(d) and not first <= d <= last]

        def kept(day: str) -> pl.LazyFrame:
            return self.read_single(days_table, day).lazy().drop("day")  # type: ignore[union-attr]

        in_window = pl.col("day").is_between(self.first, window.run_date)
        change = sum_changes(
            total,
            [changes.filter(in_window).drop("day").lazy(), *map(kept, entering)],
            [kept(day) for day in leaving],
        )
        kept_days = changes.filter(pl.col("day") >= self.first)
        for (day,), part in kept_days.partition_by("day", as_dict=True).items():
            stored = self.read_single(days_table, day.isoformat())
            sums = net_sums(
                days_table, [part.lazy(), *([stored.lazy()] if stored is not None else [])], []
            ).collect()
            if sums.height:
                self.write(days_table, day.isoformat(), sums, replace=True)
            else:
                self.files.get(days_table, {}).pop(day.isoformat(), None)
        self.drop_keys_before(days_table, first)
        return change

    def refund_flags(self, orders: pl.DataFrame, need: pl.DataFrame) -> pl.DataFrame:
        """The order rows, with the flags of their current refunds taken anew for the orders in
        `need` (their refunds changed, or they have just got their row); a row whose flags
        changed is marked to be written. Every other row keeps the flags it was stored with."""
        ids = orders.select("order_id").join(need, on="order_id", how="semi")["order_id"]
        ids = ids.unique().sort()
        refunds = self.read_keyed(
            REFUNDS_CURRENT,
            REFUND_ROW_SCHEMA,
            self.keys(REFUNDS_CURRENT),
            ids,
            identity="refund_id",
        )
        flags = (
            ids.to_frame()
            .join(order_refund_flags(refunds.lazy()).collect(), on="order_id", how="left")
            .cast(REFUND_FLAGS_SCHEMA)
            .with_columns(_taken=pl.lit(True))
        )
        joined = orders.join(flags, on="order_id", how="left", suffix="_now")
        taken = pl.col("_taken").fill_null(False)
        differs = pl.any_horizontal(~pl.col(f).eq_missing(pl.col(f"{f}_now")) for f in REFUND_FLAGS)
        now = {
            f: pl.when(taken).then(pl.col(f"{f}_now")).otherwise(pl.col(f)) for f in REFUND_FLAGS
        }
        return joined.with_columns(
            _changed=pl.col("_changed") | (taken & differs & ~pl.col(GONE)), **now
        ).select(orders.columns)

    def appeal_flags(self, orders: pl.DataFrame) -> pl.DataFrame:
        """The order rows read tonight, each marked with whether an upheld appeal removes it
        as of tonight's window (13.2); a row whose mark moved is written. Rows the night does
        not read keep their mark: it moves only for the orders of `Upheld.changed`, which the
        night reads."""
        was = orders.rename({APPEAL_FLAG: "_was"}).lazy()
        marked = mark_upheld(was, self.upheld.now.lazy(), "order").collect()
        moved = ~pl.col("_was").eq_missing(pl.col(APPEAL_FLAG)) & ~pl.col(GONE)
        return marked.with_columns(_changed=pl.col("_changed") | moved).select(orders.columns)

    # ---------------------------------------------------------------------------------------
    # sums

    def order_changes(
        self, live: pl.DataFrame, counted_before: pl.DataFrame
    ) -> dict[str, pl.LazyFrame]:
        """What tonight changes in the window's order-side sums: what the rows read tonight add
        at tonight's window, less what they added at last night's (the driver keeps the totals).

        Every other row of the shard has settled and was not touched, so it adds tonight what
        it added last night. The rows read that have not settled are kept as the pending ones,
        read again tomorrow.
        """
        window, previous = self.window, self.task.previous
        pending_now = live.join(
            window_order_facts(live.lazy(), window)
            .filter(~settled(window.cutoff))
            .select("order_id")
            .collect(),
            on="order_id",
            how="semi",
        )
        self.write(PENDING, "ids", pending_now.select("order_id").sort("order_id"), replace=True)
        self.counts.update(orders_pending=pending_now.height)
        added = order_sums(live.lazy(), window)
        removed = (
            order_sums(counted_before.lazy(), previous)
            if previous is not None and counted_before.height
            else {}
        )
        return {
            table: sum_changes(table, [added[table]], [removed[table]] if removed else [])
            for table in ORDER_SUMS
        }

    def count_held(self, live: pl.DataFrame, stored: pl.DataFrame) -> None:
        """The orders the shard holds, those with tracking events, and its current refunds and
        sessions: kept as counts, less the rows read tonight, plus the rows they are now."""

        def counts(rows: pl.DataFrame, sign: int) -> pl.DataFrame:
            return rows.select(
                orders=pl.len().cast(pl.Int64) * sign,
                tracked=pl.col("last_event_at").is_not_null().sum().cast(pl.Int64) * sign,
                refunds=pl.lit(0, pl.Int64),
                sessions=pl.lit(0, pl.Int64),
            )

        logs = {
            "refunds": self.counted.get("refunds", 0),
            "sessions": self.counted.get("cs_sessions", 0),
        }
        changed = pl.DataFrame(
            {"orders": [0], "tracked": [0], **{name: [n] for name, n in logs.items()}},
            schema=dict.fromkeys(["orders", "tracked", *logs], pl.Int64),
        )
        kept = self.read_single(HELD, "counts")
        parts = [
            counts(live, 1),
            counts(stored, -1),
            changed,
            *([kept] if kept is not None else []),
        ]
        held = pl.concat(parts).sum()
        self.write(HELD, "counts", held, replace=True)
        self.counts.update({name: int(held[name][0]) for name in held.columns})

    def write_sums(self, frames: dict[str, pl.LazyFrame]) -> None:
        """What the shard's night changes in the window's sums, for the driver to add up."""
        collected = pl.collect_all(list(frames.values()))
        part = f"part-{self.task.shard:05d}.parquet"
        for name, frame in zip(frames, collected, strict=True):
            self.inbox.write_parquet(frame.to_arrow(), "sums", name, part)

    def read_single(self, table: str, key: str) -> pl.DataFrame | None:
        """The one file of a table kept whole (replaced each night), or None before the first."""
        files = self.files.get(table, {}).get(key)
        return self.store.read(files)[0] if files else None

    def current(self, table: str, log: str) -> pl.DataFrame:
        """The current rows of `log` taken from every stored version in the window."""
        schema = LOGS[log]
        version = schema.version_column if schema.change_log else None
        rows = self.read_by_partition(table, log_schema(log))
        return current_rows(rows, schema.key, version, schema.column_names)

    # ---------------------------------------------------------------------------------------
    # orders

    def fold_orders(
        self, new: pl.DataFrame, stored: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """The order rows read tonight (`stored`), after tonight's versions and the window's move.

        `stored` holds the rows of every order with a new version and of the dates that leave.
        Returns those order rows (`_key` its paid date, `_changed` whether it must be written,
        `_gone` for rows that left a date), the orders that left the rows (with their tracking
        span, for the orphans) and the ids of orders that entered them tonight.
        """
        window, first = self.window, self.first.isoformat()
        retired = self.read_keyed("retired", RETIRED_SCHEMA, self.keys("retired"))
        evicted = stored.filter(pl.col("_key") < first)
        kept = stored.filter(pl.col("_key") >= first)
        # the orders whose current row can change: a new version, or their date left
        touched = pl.concat([new.select("order_id"), evicted.select("order_id")]).unique()
        before = pl.concat(
            [
                stored.select(*ORDER_COLUMNS, "_key").with_columns(_place=pl.lit("orders")),
                retired.filter(pl.col("_key") >= first)
                .select(*ORDER_COLUMNS, "_key")
                .with_columns(_place=pl.lit("retired")),
            ]
        ).join(touched, on="order_id", how="semi")
        contest = pl.concat(
            [
                before.select(ORDER_COLUMNS).with_columns(_new=pl.lit(False)),
                new.select(ORDER_COLUMNS).with_columns(_new=pl.lit(True)),
            ]
        )
        winners = current_rows(contest, "order_id", "updated_at", ORDERS.column_names, "_new")
        start = pl.lit(window.start)
        place = (
            pl.when(pl.col("paid_at") >= start)
            .then(pl.lit("orders"))
            .when(pl.col("updated_at") >= start)
            .then(pl.lit("retired"))
        )
        key = (
            pl.when(place == "orders")
            .then(local_date("paid_at", window.tz))
            .otherwise(local_date("updated_at", window.tz))
            .cast(pl.String)
        )
        winners = winners.with_columns(_place_new=place, _key_new=key)
        moves = winners.join(before.select("order_id", "_place", "_key"), on="order_id", how="left")
        # an order's row is rewritten when its version changed or it moved to another date
        moved = moves.filter(
            pl.col("_new")
            | (pl.col("_place") != pl.col("_place_new")).fill_null(True)
            | (pl.col("_key") != pl.col("_key_new")).fill_null(True)
        )
        tracking = stored.select("order_id", *TRACKING, *REFUND_FLAGS, APPEAL_FLAG)
        arriving = (
            moved.filter(pl.col("_place_new") == "orders")
            .select(*ORDER_COLUMNS, _key=pl.col("_key_new"))
            .join(tracking, on="order_id", how="left")
            .with_columns(pl.lit(False).alias(GONE), _changed=pl.lit(True))
        )
        leaving_rows = moved.filter(pl.col("_place") == "orders").select("order_id", "_key")
        # a marker only where no new row of the order replaces it under the same date
        gone = (
            stored.join(leaving_rows, on=["order_id", "_key"], how="semi")
            .join(arriving.select("order_id", "_key"), on=["order_id", "_key"], how="anti")
            .filter(pl.col("_key") >= first)
            .with_columns(pl.lit(True).alias(GONE), _changed=pl.lit(True))
        )
        unchanged = kept.join(leaving_rows, on=["order_id", "_key"], how="anti").with_columns(
            pl.lit(False).alias(GONE), _changed=pl.lit(False)
        )
        columns = [*ORDER_ROW_SCHEMA, "_key", "_changed"]
        orders = pl.concat(
            [unchanged.select(columns), gone.select(columns), arriving.select(columns)]
        )
        self.retire(retired, moves, moved)
        # orders that stopped having a row: their stored events become orphans
        still = arriving.select("order_id")
        left = (
            stored.join(leaving_rows, on="order_id", how="semi")
            .join(still, on="order_id", how="anti")
            .filter(pl.col("last_event_dt") >= self.first)
            .select("order_id", first_dt=pl.col("first_event_dt"), dt=pl.col("last_event_dt"))
        )
        entered = arriving.join(stored.select("order_id"), on="order_id", how="anti").select(
            "order_id"
        )
        self.drop_keys_before("orders", first)
        self.counts.update(order_versions=new.height, orders_moved=moved.height)
        return orders, left, entered

    def retire(self, retired: pl.DataFrame, moves: pl.DataFrame, moved: pl.DataFrame) -> None:
        """Write the retired rows that changed: arrivals, and markers where one left."""
        first = self.first.isoformat()
        arriving = (
            moved.filter(pl.col("_place_new") == "retired")
            .select(*ORDER_COLUMNS, _key=pl.col("_key_new"))
            .with_columns(pl.lit(False).alias(GONE))
        )
        leaving = moved.filter(pl.col("_place") == "retired").select("order_id", "_key")
        gone = (
            retired.join(leaving, on=["order_id", "_key"], how="semi")
            .join(arriving.select("order_id", "_key"), on=["order_id", "_key"], how="anti")
            .filter(pl.col("_key") >= first)
            .with_columns(pl.lit(True).alias(GONE))
        )
        columns = [*RETIRED_SCHEMA, "_key"]
        changed = pl.concat([arriving.select(columns), gone.select(columns)])
        self.drop_keys_before("retired", first)
        if changed.height:
            self.write_keyed_changes("retired", changed, RETIRED_SCHEMA)

    # ---------------------------------------------------------------------------------------
    # tracking events

    def fold_events(
        self,
        orders: pl.DataFrame,
        new_events: pl.DataFrame,
        left: pl.DataFrame,
        entered: pl.DataFrame,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Tracking facts after tonight's events; returns the order rows and the new orphans.

        Events of an order with a row are folded into it when they all come after its stored
        events; the order is recomputed from its stored events when they do not, when it has
        just got its row and events were stored before it (orphans), or when one of its events'
        partitions left the window. Events of an order without a row are orphans.
        """
        first = self.first
        events = current_rows(new_events, "event_id", None, LOGS["logistics"].column_names)
        rows = orders.filter(~pl.col(GONE))
        with_row = events.join(rows.select("order_id"), on="order_id", how="semi")
        orphans_now = pl.concat(
            [
                events.join(rows.select("order_id"), on="order_id", how="anti").select(
                    "order_id", first_dt="dt", dt="dt"
                ),
                left,
            ]
        ).unique()
        stored_orphans = self.read_by_partition("orphans", ORPHAN_SCHEMA)
        extends = later_events_only(
            rows.select("order_id", "last_event_at").lazy(), with_row.lazy()
        ).collect()
        # each order to recompute, with the partitions its stored events can be in
        stored_span = (
            pl.col("first_event_dt").alias("first_dt"),
            pl.col("last_event_dt").alias("dt"),
        )
        unfolded = extends.filter(~pl.col("extends")).select("order_id")
        recompute = (
            pl.concat(
                [
                    rows.join(unfolded, on="order_id", how="semi").select("order_id", *stored_span),
                    stored_orphans.join(entered, on="order_id", how="semi"),
                    rows.filter(pl.col("first_event_dt") < pl.lit(first)).select(
                        "order_id", *stored_span
                    ),
                ]
            )
            .group_by("order_id")
            .agg(pl.col("first_dt").min(), pl.col("dt").max())
        )
        foldable = with_row.join(recompute, on="order_id", how="anti")
        folded = self.fold(rows, foldable, new_events)
        redone = self.recompute(recompute, events)
        updates = pl.concat([folded, redone])
        self.counts.update(
            events=new_events.height, orders_folded=folded.height, orders_recomputed=redone.height
        )
        if updates.height == 0:
            return orders, orphans_now
        updated = (
            rows.join(updates.select("order_id"), on="order_id", how="semi")
            .drop(TRACKING)
            .join(updates, on="order_id", how="left")
            .with_columns(_changed=pl.lit(True))
        )
        columns = orders.columns
        orders = pl.concat(
            [
                orders.join(
                    updated.select("order_id", "_key"), on=["order_id", "_key"], how="anti"
                ),
                updated.select(columns),
            ]
        )
        return orders, orphans_now

    def fold(self, rows: pl.DataFrame, later: pl.DataFrame, copies: pl.DataFrame) -> pl.DataFrame:
        """`merge_tracking` of the stored facts and events that all come after them.

        `copies` are all of tonight's events, copies included: an order's span of partitions
        covers every copy of its events, so that a copy still in the window is found when the
        partition of its first copy leaves.
        """
        if later.height == 0:
            return pl.DataFrame(schema={"order_id": pl.Int64, **TRACKING_SCHEMA})
        stored = rows.join(later.select("order_id").unique(), on="order_id", how="semi").filter(
            pl.col("last_event_at").is_not_null()
        )
        spans = (
            copies.lazy()
            .join(later.lazy().select("order_id").unique(), on="order_id", how="semi")
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
        facts = stored.lazy().select("order_id", *TRACKING[:-2])
        return (
            merge_tracking(facts, later.lazy())
            .join(spans, on="order_id", how="left")
            .select("order_id", *TRACKING)
            .collect()
            .cast(TRACKING_SCHEMA)
        )

    def recompute(self, orders: pl.DataFrame, tonight: pl.DataFrame) -> pl.DataFrame:
        """Tracking facts of `orders` from all their current events: stored and tonight's."""
        if orders.height == 0:
            return pl.DataFrame(schema={"order_id": pl.Int64, **TRACKING_SCHEMA})
        stored = []
        for key in self.keys("events"):
            day = dt.date.fromisoformat(key)
            if day < self.first:
                continue
            wanted = orders.filter(
                (pl.col("first_dt") <= day).fill_null(True) & (pl.col("dt") >= day).fill_null(True)
            )["order_id"]
            if wanted.len() == 0:
                continue  # no order to recompute has an event in this partition
            found = self.store.read(
                self.files["events"][key], match=("order_id", wanted.unique().sort())
            )
            stored += [frame.cast(log_schema("logistics")) for frame in found]
        events = pl.concat(
            [*stored, tonight.join(orders.select("order_id"), on="order_id", how="semi")],
            how="vertical",
        )
        current = current_rows(events, "event_id", None, LOGS["logistics"].column_names)
        # the span covers every copy (see `fold`), the facts only the current events
        spans = events.group_by("order_id").agg(
            first_event_dt=pl.col("dt").min(), last_event_dt=pl.col("dt").max()
        )
        facts = tracking_facts(current.lazy()).collect().join(spans, on="order_id", how="left")
        # an order left with no event gets empty facts, replacing what it had
        return (
            orders.select("order_id")
            .join(facts, on="order_id", how="left")
            .select("order_id", *TRACKING)
            .cast(TRACKING_SCHEMA)
        )

    def write_orders(self, orders: pl.DataFrame) -> None:
        changed = orders.filter(pl.col("_changed"))
        if changed.height:
            self.write_keyed_changes("orders", changed, ORDER_ROW_SCHEMA)


def merge_sums(exchange: Exchange, shards: int) -> dict[str, pl.DataFrame]:
    """Every shard's sums, stacked per table (the driver adds them up)."""
    merged = {}
    for name in SUMS:
        parts = [
            pl.from_arrow(exchange.read_parquet("sums", name, f"part-{s:05d}.parquet"))
            for s in range(shards)
        ]
        merged[name] = pl.concat(parts, how="vertical_relaxed")
    return merged
