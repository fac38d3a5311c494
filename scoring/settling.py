"""When an order's contribution to the sums stops moving with the cutoff.

Of everything an order of V adds to its shop's sums and its item's counts, only four things
depend on the run's cutoff (SCORING.md 4, 7): whether its pickup is due (`deadline < cutoff`),
whether its delivery promise is due (`promise < cutoff`), whether an open trail has stalled
(`cutoff - last trail time > 72 h`), and whether its problem refund was requested before the
cutoff. (Whether it was paid before the cutoff, and so is in V, is a fifth: the quarantine
makes it always true for a stored order, and `settles_at` covers it anyway.) Each is a comparison
with one instant that, once the cutoff has passed it, stays passed. So an order has an instant
after which every later cutoff gives it the same contribution: `settles_at`.

The window state keeps the sums of settled orders and recomputes each night only the orders that
have not settled or that the night changed (`pipelines.state.shard`); `tests/scoring/
test_settling.py` checks that a settled order's sums are the same at every later cutoff.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from scoring.activity import category_amounts, order_side, with_appealed
from scoring.appeals import counts_nowhere
from scoring.facts import STALL_GAP, appealed_orders, orders_of_v
from scoring.product import item_counts
from scoring.window import Window


def settles_at() -> pl.Expr:
    """The instant after which the order's contribution is the same at every cutoff; null when
    it never moves (an abnormal order, which counts nowhere, or one with nothing open).

    Needs the columns of `scoring.facts.window_order_facts` (`deadline`, the tracking facts,
    the refund flags). An order counts as settled at cutoff `c` when this is null or `< c`,
    which matches the strict comparisons of the indicators exactly.
    """
    picked_up = pl.col("pickup_at").is_not_null()
    delivered = pl.col("delivered_at").is_not_null()
    cancelled = pl.col("cancelled_at").is_not_null()
    # pickup_on_time_rate: due at `deadline < cutoff` unless picked up or cancelled by then
    pickup_open = ~picked_up & ~(pl.col("cancelled_at") <= pl.col("deadline")).fill_null(False)
    # delivery_promise_rate: due at `promise < cutoff` unless delivered or cancelled unshipped
    promise_open = (
        pl.col("promised_delivery_at").is_not_null() & ~delivered & ~(cancelled & ~picked_up)
    )
    # track_anomaly_rate: an open trail stalls once its last time is more than 72 h before
    stall_open = picked_up & ~delivered & pl.col("last_trail_event_at").is_not_null()
    instants = [
        pl.col("paid_at"),  # in V only once paid before the cutoff
        pl.when(pickup_open).then(pl.col("deadline")),
        pl.when(promise_open).then(pl.col("promised_delivery_at")),
        pl.when(stall_open).then(pl.col("last_trail_event_at") + STALL_GAP),
        pl.col("first_problem_requested_at"),
    ]
    return pl.when(~counts_nowhere()).then(pl.max_horizontal(instants))


def settled(cutoff: dt.datetime) -> pl.Expr:
    """The order's contribution at `cutoff` is the one it has at every later cutoff."""
    instant = settles_at()
    return instant.is_null() | (instant < pl.lit(cutoff))


# The order-side sums, per table: the columns that key a row, and the count that says a key
# still has orders of V once contributions are taken away (a key at zero is dropped).
ORDER_SUMS: dict[str, tuple[list[str], str | None]] = {
    # None: a shop may have appealed orders alone (`appealed_orders`, 13.4) and no valid one
    "orders": (["shop_id"], None),
    "categories": (["shop_id", "category_id"], "orders"),
    "items": (["item_id", "shop_id", "category_id"], "paid_orders"),
}


def order_sums(orders: pl.LazyFrame, window: Window) -> dict[str, pl.LazyFrame]:
    """What current orders add to their shops' sums, categories' amounts and items' counts:
    those of V all of them, those an upheld appeal took out of V their `appealed_orders`.

    `orders` carry their tracking facts, refund flags and `appeal_upheld`.
    """
    orders_v = orders_of_v(orders, window)
    by_shop = with_appealed(
        order_side(orders_v, window),
        appealed_orders(orders, window),
        ("shop_id",),
        "appealed_orders",
    )
    return {
        "orders": by_shop,
        "categories": category_amounts(orders_v),
        "items": item_counts(orders_v, window),
    }


# Every sum the window state keeps from night to night: per table, the columns that key a row
# and the count that says a key still counts rows (None: a key whose sums are all zero counts
# nothing). The order-side ones; the sessions' and refunds' per shop, and per shop and the day
# that puts them in the window (`scoring.activity.DAY_KEYS`).
KEPT_SUMS: dict[str, tuple[list[str], str | None]] = {
    **ORDER_SUMS,
    "sessions": (["shop_id"], None),  # None: appealed sessions alone still count (13.4)
    "session_days": (["day", "shop_id"], None),
    "refunds": (["shop_id"], None),
    "refund_days": (["day", "shop_id"], None),
}


def net_sums(table: str, added: list[pl.LazyFrame], removed: list[pl.LazyFrame]) -> pl.LazyFrame:
    """The `added` sums of `table` (a `KEPT_SUMS` table) less the `removed` ones, per key;
    keys left with nothing counted are dropped. Every column is an integer (or decimal) sum,
    so this is exact."""
    counted = KEPT_SUMS[table][1]
    changes = sum_changes(table, added, removed)
    return changes if counted is None else changes.filter(pl.col(counted) != 0)


def sum_changes(table: str, added: list[pl.LazyFrame], removed: list[pl.LazyFrame]) -> pl.LazyFrame:
    """The `added` sums of `table` less the `removed` ones, per key, keeping every key that
    changed: a change may leave a key's order count as it was and move another of its sums
    (an order's pickup falling due), or be negative (a day leaving the window)."""
    keys, _ = KEPT_SUMS[table]
    taken = [frame.with_columns(-pl.exclude(keys)) for frame in removed]
    summed = pl.concat([*added, *taken], how="vertical_relaxed").group_by(keys).agg(pl.all().sum())
    return summed.filter(pl.any_horizontal(pl.exclude(keys) != 0))
