"""Per-shop sums over the facts: the one place where rows become shop totals.

Everything downstream (indicators, bonus items, label values, main category) is a ratio of these
sums, so a shop's published numbers can always be traced back to counts of its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import polars as pl

from scoring.exemptions import matched_counts
from scoring.facts import dated_refunds, dated_sessions
from scoring.indicators import count, ratio_sums
from scoring.window import Window

# A per-category total of int64 amounts must not wrap (engineering notes). Decimal(38, 0) holds
# any sum of int64s this side of 10^19 rows and, unlike Int128, crosses Arrow and Parquet.
AMOUNT = pl.Decimal(38, 0)


def category_amounts(orders_v: pl.LazyFrame) -> pl.LazyFrame:
    """Paid amount per shop and category over orders of V: what decides the main category.

    A sum, so the amounts of disjoint parts of V add up (`main_category` re-sums them).
    """
    return orders_v.group_by("shop_id", "category_id").agg(
        amount=pl.col("amount_cents").cast(AMOUNT).sum(), orders=pl.len().cast(pl.Int64)
    )


def main_category(amounts: pl.LazyFrame) -> pl.LazyFrame:
    """The category with the greatest paid amount over the shop's orders of V; ties: smallest id."""
    return (
        amounts.group_by("shop_id", "category_id")
        .agg(pl.col("amount", "orders").sum())
        .filter(pl.col("orders") > 0)
        .sort(["shop_id", "amount", "category_id"], descending=[False, True, False])
        .group_by("shop_id")
        .agg(main_category_id=pl.col("category_id").first())
    )


def with_appealed(
    sums: pl.LazyFrame, appealed: pl.LazyFrame, by: tuple[str, ...], name: str
) -> pl.LazyFrame:
    """`sums` with `name`: per `by`, the rows of `appealed` (rows an upheld appeal took out of
    the population, 13.4). A key with appealed rows alone gets zeros in every other sum."""
    counts = appealed.group_by(*by).agg(pl.len().cast(pl.Int64).alias(name))
    return pl.concat([sums, counts], how="diagonal").group_by(*by).agg(pl.all().sum())


def order_side(orders_v: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """Per-shop sums over orders of V (bonus shares and label values beside the ratios)."""
    picked_up = pl.col("pickup_at").is_not_null()
    return orders_v.group_by("shop_id").agg(
        pl.len().cast(pl.Int64).alias("valid_orders"),
        *ratio_sums("orders", window),
        *matched_counts("orders", window.exemptions, window.tz),
        return_insured_orders=count(pl.col("return_insurance")),
        next_day_orders=count(pl.col("delivered_next_day")),
        picked_up_orders=count(picked_up),
        pickup_micros=pl.when(picked_up)
        .then((pl.col("pickup_at") - pl.col("paid_at")).dt.total_microseconds())
        .sum(),
    )


def refund_side(refunds_f: pl.LazyFrame, window: Window, by: tuple[str, ...]) -> pl.LazyFrame:
    """Sums over refunds dated by the way they count (`scoring.facts.dated_refunds`), per `by`."""
    damaged_decided = (
        pl.col("in_r") & (pl.col("reason") == "damaged") & pl.col("seller_decision").is_not_null()
    )
    return refunds_f.group_by(*by).agg(
        *ratio_sums("refunds", window),
        *matched_counts("refunds", window.exemptions, window.tz, among=pl.col("in_r")),
        refunds_in_window=count(pl.col("in_r")),
        appealed_refunds=count(pl.col("appealed")),
        help_refunds=count(pl.col("is_help")),
        damaged_decided=count(damaged_decided),
        damaged_agreed=count(damaged_decided & (pl.col("seller_decision") == "agreed")),
    )


def session_side(sessions_c: pl.LazyFrame, window: Window, by: tuple[str, ...]) -> pl.LazyFrame:
    """Sums over sessions dated by their start (`scoring.facts.dated_sessions`), per `by`; the
    sessions an upheld appeal took out of C are counted in `appealed_sessions` alone."""
    answered_in_hours = pl.col("in_service_hours") & pl.col("first_response_seconds").is_not_null()
    in_c = sessions_c.filter(~pl.col("appeal_upheld"))
    sums = in_c.group_by(*by).agg(
        *ratio_sums("sessions", window),
        *matched_counts("sessions", window.exemptions, window.tz),
        sessions_in_window=pl.len().cast(pl.Int64),
        help_sessions=count(pl.col("escalated_to_platform")),
        answered_service_sessions=count(answered_in_hours),
        response_seconds=pl.when(answered_in_hours)
        .then(pl.col("first_response_seconds").cast(pl.Int64))
        .sum(),
    )
    appealed = sessions_c.filter(pl.col("appeal_upheld"))
    return with_appealed(sums, appealed, by, "appealed_sessions")


# Sums split by the local day that puts their rows in the window: the window's sums are those of
# its days, so the window state keeps them per day and drops a day when it leaves the window.
DAY_KEYS = ("day", "shop_id")


def session_days(sessions: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """`session_side` per shop and day the sessions started (`scoring.facts.dated_sessions`)."""
    return session_side(dated_sessions(sessions, window.tz), window, DAY_KEYS)


def refund_days(refunds: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """`refund_side` per shop and day of the request or help event (`dated_refunds`)."""
    return refund_side(dated_refunds(refunds, window.tz), window, DAY_KEYS)


@dataclass(frozen=True)
class ShopSums:
    """Per-shop sums of one part of the window (a shard), or of all of it.

    Every field is a sum over rows, so the sums of disjoint parts add up to the sums of the
    whole (`add_up`): a shard task computes them over its own rows, the driver adds the shards.
    """

    orders: pl.LazyFrame  # order_side
    refunds: pl.LazyFrame  # refund_side
    sessions: pl.LazyFrame  # session_side
    categories: pl.LazyFrame  # category_amounts

    def frames(self) -> dict[str, pl.LazyFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def add_up(parts: ShopSums) -> ShopSums:
    """The sums of disjoint parts, stacked in each frame, added up per shop."""

    def per_shop(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.group_by("shop_id").agg(pl.all().sum())

    return ShopSums(
        per_shop(parts.orders),
        per_shop(parts.refunds),
        per_shop(parts.sessions),
        parts.categories,  # main_category adds them up per shop and category
    )


def shop_activity(sums: ShopSums) -> pl.LazyFrame:
    """One row per shop of `shop_scores`: a valid order, a refund in R or a session in C.

    `sums` are over the whole window (one part, or `add_up` of the shards'). A shop whose only
    activity is a help refund has no row, so that refund counts nowhere (12.8).
    """
    joined = sums.orders.join(sums.refunds, on="shop_id", how="full", coalesce=True).join(
        sums.sessions, on="shop_id", how="full", coalesce=True
    )
    totals = [c for c in joined.collect_schema().names() if c != "shop_id"]
    return (
        joined.with_columns(pl.col(totals).fill_null(0))
        .filter(
            (pl.col("valid_orders") > 0)
            | (pl.col("refunds_in_window") > 0)
            | (pl.col("sessions_in_window") > 0)
        )
        .join(main_category(sums.categories), on="shop_id", how="left")
    )
