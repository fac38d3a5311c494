"""Per-shop sums over the facts: the one place where rows become shop totals.

Every fact row (an order of V, a refund, a session) is first turned into its *contribution*: the
Int64 amounts it adds to its shop's sums (and, for an order, to its category's amount and its
item's counts). The window's totals are plain sums of contributions, so a shop's published
numbers trace back to counts of its own rows, and the window state can keep the contributions
and move the totals by the rows that changed: integer sums do not depend on the order of adding
or subtracting (pipelines/window_sums.py).

A contribution also says how long it holds without new data, in two instants:
- `recheck_at`: the earliest cutoff at which it may differ (a pickup deadline or a delivery
  promise passing, a trail turning into a stall); null when no later cutoff changes it;
- `leaves_at`: the earliest of its in-window instants; once the window starts after it, the row
  counts less (or nowhere).
Everything else that changes a contribution is a change to the row itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from scoring.facts import STALL_GAP, refund_flags, session_flags
from scoring.indicators import flag, ratio_terms
from scoring.product import merge_item_counts, problem_order
from scoring.window import Window

ORDER_KEYS = ("order_id", "shop_id", "item_id", "category_id", "amount_cents")
REFUND_KEYS = ("refund_id", "shop_id")
SESSION_KEYS = ("session_id", "shop_id")
VALIDITY = ("recheck_at", "leaves_at")
# per order, summed per item rather than per shop
ITEM_TERMS = ("problem_orders",)


@dataclass(frozen=True)
class Totals:
    """The window's sums, before any rule is applied.

    `shop_orders`, `shop_refunds`, `shop_sessions`: one row per shop with its sums from each
    fact table; `category_amounts`: per (shop, category) its orders of V and their paid amount
    (Int128); `items`: per (item, shop, category) its paid and problem orders.
    """

    shop_orders: pl.LazyFrame
    shop_refunds: pl.LazyFrame
    shop_sessions: pl.LazyFrame
    category_amounts: pl.LazyFrame
    items: pl.LazyFrame


def first_at_or_after(instants: list[pl.Expr], bound: dt.datetime) -> pl.Expr:
    """The earliest of `instants` at or after `bound`; null when there is none."""
    return pl.min_horizontal([pl.when(t >= pl.lit(bound)).then(t) for t in instants])


def order_recheck_at(window: Window) -> pl.Expr:
    """The earliest later cutoff at which an order's contribution can change with no new data.

    Three instants of an order are compared with the cutoff: the pickup deadline (an order not
    picked up falls due), the delivery promise (an undelivered one falls due) and 72 h after its
    trail's last event (an undelivered trail stalls). An instant before the cutoff has had its
    effect. The others never lie after it: payment and refund requests come no later than the
    version that carries them (2.5), and that is before the cutoff of its partition.
    """
    picked_up = pl.col("pickup_at").is_not_null()
    delivered = pl.col("delivered_at").is_not_null()
    thresholds = [
        pl.when(~picked_up).then(pl.col("deadline")),
        pl.when(~delivered).then(pl.col("promised_delivery_at")),
        pl.when(picked_up & ~delivered).then(pl.col("last_trail_event_at") + STALL_GAP),
    ]
    return first_at_or_after(thresholds, window.cutoff)


def order_contributions(orders_v: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """One row per order of V (`window_order_facts`): what it adds to its shop, category, item."""
    picked_up = pl.col("pickup_at").is_not_null()
    pickup_micros = (pl.col("pickup_at") - pl.col("paid_at")).dt.total_microseconds()
    return orders_v.select(
        *ORDER_KEYS,
        *ratio_terms("orders", window.cutoff),
        valid_orders=pl.lit(1, pl.Int64),
        return_insured_orders=flag(pl.col("return_insurance")),
        next_day_orders=flag(pl.col("delivered_next_day")),
        picked_up_orders=flag(picked_up),
        pickup_micros=pl.when(picked_up).then(pickup_micros).otherwise(0),
        problem_orders=flag(problem_order()),
        recheck_at=order_recheck_at(window),
        leaves_at=pl.col("paid_at"),
    )


def refund_contributions(refunds: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """One row per current refund that counts (R or help) or may count at a later cutoff."""
    flagged = refund_flags(refunds, window)
    damaged_decided = (
        pl.col("in_r") & (pl.col("reason") == "damaged") & pl.col("seller_decision").is_not_null()
    )
    instants = [pl.col("requested_at"), pl.col("escalated_at")]
    return flagged.select(
        *REFUND_KEYS,
        *ratio_terms("refunds", window.cutoff),
        refunds_in_window=flag(pl.col("in_r")),
        help_refunds=flag(pl.col("is_help")),
        damaged_decided=flag(damaged_decided),
        damaged_agreed=flag(damaged_decided & (pl.col("seller_decision") == "agreed")),
        recheck_at=first_at_or_after(instants, window.cutoff),
        leaves_at=first_at_or_after(instants, window.start),
    ).filter(
        (pl.col("refunds_in_window") > 0)
        | (pl.col("help_refunds") > 0)
        | pl.col("recheck_at").is_not_null()
    )


def session_contributions(sessions: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """One row per session of C, or one that starts after the cutoff (counts at a later one)."""
    flagged = session_flags(sessions, window)
    in_c = pl.col("in_c")
    answered_in_hours = pl.col("in_service_hours") & pl.col("first_response_seconds").is_not_null()
    terms = [
        *ratio_terms("sessions", window.cutoff),
        flag(in_c).alias("sessions_in_window"),
        flag(pl.col("escalated_to_platform")).alias("help_sessions"),
        flag(answered_in_hours).alias("answered_service_sessions"),
        pl.when(answered_in_hours)
        .then(pl.col("first_response_seconds").cast(pl.Int64))
        .otherwise(0)
        .alias("response_seconds"),
    ]
    started = [pl.col("started_at")]
    return flagged.select(
        *SESSION_KEYS,
        # a session outside C adds nothing; it is kept only to be looked at again later
        *[pl.when(in_c).then(term).otherwise(0) for term in terms],
        recheck_at=first_at_or_after(started, window.cutoff),
        leaves_at=first_at_or_after(started, window.start),
    ).filter((pl.col("sessions_in_window") > 0) | pl.col("recheck_at").is_not_null())


def sum_columns(contributions: pl.LazyFrame, keys: tuple[str, ...]) -> list[str]:
    """The summed columns of a contribution table: all but its keys and validity instants."""
    skip = {*keys, *VALIDITY, *ITEM_TERMS}
    return [c for c in contributions.collect_schema().names() if c not in skip]


def per_shop(contributions: pl.LazyFrame, keys: tuple[str, ...]) -> pl.LazyFrame:
    return contributions.group_by("shop_id").agg(pl.col(sum_columns(contributions, keys)).sum())


def category_amounts(orders: pl.LazyFrame) -> pl.LazyFrame:
    # Int128: a per-category total of int64 amounts must not wrap (engineering notes)
    return orders.group_by("shop_id", "category_id").agg(
        orders=pl.len().cast(pl.Int64), amount=pl.col("amount_cents").cast(pl.Int128).sum()
    )


def item_totals(orders: pl.LazyFrame) -> pl.LazyFrame:
    return orders.group_by("item_id", "shop_id", "category_id").agg(
        paid_orders=pl.len().cast(pl.Int64), problem_orders=pl.col("problem_orders").sum()
    )


def window_totals(orders: pl.LazyFrame, refunds: pl.LazyFrame, sessions: pl.LazyFrame) -> Totals:
    """The window's totals from its contribution rows (each `*_contributions` above)."""
    return Totals(
        shop_orders=per_shop(orders, ORDER_KEYS),
        shop_refunds=per_shop(refunds, REFUND_KEYS),
        shop_sessions=per_shop(sessions, SESSION_KEYS),
        category_amounts=category_amounts(orders),
        items=item_totals(orders),
    )


def main_category(amounts: pl.LazyFrame) -> pl.LazyFrame:
    """The category with the greatest paid amount over the shop's orders of V; ties: smallest id.

    `amounts` is `category_amounts`: only categories with an order of V have a row.
    """
    return (
        amounts.sort(["shop_id", "amount", "category_id"], descending=[False, True, False])
        .group_by("shop_id")
        .agg(main_category_id=pl.col("category_id").first())
    )


def shop_activity(totals: Totals) -> pl.LazyFrame:
    """One row per shop of `shop_scores`: a valid order, a refund in R or a session in C.

    A shop whose only activity is a help refund has no row, so that refund counts nowhere (12.8).
    """
    joined = totals.shop_orders.join(
        totals.shop_refunds, on="shop_id", how="full", coalesce=True
    ).join(totals.shop_sessions, on="shop_id", how="full", coalesce=True)
    sums = [c for c in joined.collect_schema().names() if c != "shop_id"]
    return (
        joined.with_columns(pl.col(sums).fill_null(0))
        .filter(
            (pl.col("valid_orders") > 0)
            | (pl.col("refunds_in_window") > 0)
            | (pl.col("sessions_in_window") > 0)
        )
        .join(main_category(totals.category_amounts), on="shop_id", how="left")
    )


def item_counts(totals: Totals) -> pl.LazyFrame:
    """Paid and problem orders per item; shop and category are the item's (smallest if mixed)."""
    return merge_item_counts(totals.items)
