"""Per-shop sums over the facts: the one place where rows become shop totals.

Everything downstream (indicators, bonus items, label values, main category) is a ratio of these
sums, so a shop's published numbers can always be traced back to counts of its own rows.
"""

from __future__ import annotations

import polars as pl

from scoring.indicators import count, ratio_sums
from scoring.window import Window


def main_category(orders_v: pl.LazyFrame) -> pl.LazyFrame:
    """The category with the greatest paid amount over the shop's orders of V; ties: smallest id."""
    return (
        orders_v.group_by("shop_id", "category_id")
        # Int128: a per-category total of int64 amounts must not wrap (engineering notes)
        .agg(amount=pl.col("amount_cents").cast(pl.Int128).sum())
        .sort(["shop_id", "amount", "category_id"], descending=[False, True, False])
        .group_by("shop_id")
        .agg(main_category_id=pl.col("category_id").first())
    )


def order_side(orders_v: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    picked_up = pl.col("pickup_at").is_not_null()
    return orders_v.group_by("shop_id").agg(
        pl.len().cast(pl.Int64).alias("valid_orders"),
        *ratio_sums("orders", window.cutoff),
        return_insured_orders=count(pl.col("return_insurance")),
        next_day_orders=count(pl.col("delivered_next_day")),
        picked_up_orders=count(picked_up),
        pickup_micros=pl.when(picked_up)
        .then((pl.col("pickup_at") - pl.col("paid_at")).dt.total_microseconds())
        .sum(),
    )


def refund_side(refunds_f: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    damaged_decided = (
        pl.col("in_r") & (pl.col("reason") == "damaged") & pl.col("seller_decision").is_not_null()
    )
    return refunds_f.group_by("shop_id").agg(
        *ratio_sums("refunds", window.cutoff),
        refunds_in_window=count(pl.col("in_r")),
        help_refunds=count(pl.col("is_help")),
        damaged_decided=count(damaged_decided),
        damaged_agreed=count(damaged_decided & (pl.col("seller_decision") == "agreed")),
    )


def session_side(sessions_c: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    answered_in_hours = pl.col("in_service_hours") & pl.col("first_response_seconds").is_not_null()
    return sessions_c.group_by("shop_id").agg(
        *ratio_sums("sessions", window.cutoff),
        sessions_in_window=pl.len().cast(pl.Int64),
        help_sessions=count(pl.col("escalated_to_platform")),
        answered_service_sessions=count(answered_in_hours),
        response_seconds=pl.when(answered_in_hours)
        .then(pl.col("first_response_seconds").cast(pl.Int64))
        .sum(),
    )


def shop_activity(
    orders_v: pl.LazyFrame, refunds_f: pl.LazyFrame, sessions_c: pl.LazyFrame, window: Window
) -> pl.LazyFrame:
    """One row per shop of `shop_scores`: a valid order, a refund in R or a session in C.

    A shop whose only activity is a help refund has no row, so that refund counts nowhere (12.8).
    """
    joined = (
        order_side(orders_v, window)
        .join(refund_side(refunds_f, window), on="shop_id", how="full", coalesce=True)
        .join(session_side(sessions_c, window), on="shop_id", how="full", coalesce=True)
    )
    sums = [c for c in joined.collect_schema().names() if c != "shop_id"]
    return (
        joined.with_columns(pl.col(sums).fill_null(0))
        .filter(
            (pl.col("valid_orders") > 0)
            | (pl.col("refunds_in_window") > 0)
            | (pl.col("sessions_in_window") > 0)
        )
        .join(main_category(orders_v), on="shop_id", how="left")
    )
