"""Product experience score, PXI [商品体验分] (SCORING.md 7): 0-100 per item over V."""

from __future__ import annotations

import polars as pl

from scoring.exemptions import excluded
from scoring.indicators import pickup_on_time_rate
from scoring.interp import interp
from scoring.rules import Rules
from scoring.shop_score import share_strictly_below
from scoring.window import Window


def late_shipment(window: Window) -> pl.Expr:
    """(c) [延迟发货]: due for pickup and not picked up by the deadline (v1.1).

    Exactly the due orders of `pickup_on_time_rate` outside its numerator, so the shop's
    indicator and its items' problem orders can never disagree about an order; an order an
    exemption takes out of that indicator is not a late shipment either (13.3).
    """
    pickup = pickup_on_time_rate(window.cutoff)
    exempt = excluded("pickup_on_time_rate", "orders", window.exemptions, window.tz)
    return pickup.denominator & ~pickup.numerator & ~exempt


def problem_order(window: Window) -> pl.Expr:
    """(a) a quality / not-as-described / damaged refund, (b) rated 1 or 2, (c) shipped late."""
    return (
        pl.col("has_problem_refund")
        | (pl.col("review_rating") <= 2).fill_null(False)
        | late_shipment(window)
    )


def item_counts(orders_v: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """Paid and problem orders per item, shop and category over orders of V.

    Keyed by all three, so that the counts of disjoint parts of V (shards, settled orders)
    add up and can be taken away again exactly; `merge_item_counts` gives one row per item.
    """
    return orders_v.group_by("item_id", "shop_id", "category_id").agg(
        paid_orders=pl.len().cast(pl.Int64),
        problem_orders=problem_order(window).cast(pl.Int64).sum(),
    )


def merge_item_counts(parts: pl.LazyFrame) -> pl.LazyFrame:
    """`item_counts` of disjoint parts of V -> one row per item over all of V.

    An item sold under two shops or categories (which the spec does not forbid) takes the
    smallest of each among the orders it has; its counts are the totals.
    """
    keyed = ["item_id", "shop_id", "category_id"]
    return (
        parts.group_by(keyed)
        .agg(pl.col("paid_orders", "problem_orders").sum())
        .filter(pl.col("paid_orders") > 0)
        .group_by("item_id")
        .agg(pl.col("shop_id", "category_id").min(), pl.col("paid_orders", "problem_orders").sum())
    )


def item_scores(items: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Problem rate shrunk toward the category's pooled rate, mapped through the PXI knots.

    `items` is `item_counts` over all of V: the category prior pools every item of the category.
    """
    per_category = ["category_id"]
    prior = pl.col("problem_orders").sum().over(per_category) / pl.col("paid_orders").sum().over(
        per_category
    )
    k = rules.k_item
    smoothed = (pl.col("problem_orders") + k * pl.col("prior")) / (pl.col("paid_orders") + k)
    scored = pl.col("paid_orders") >= rules.min_item_orders
    return (
        items.with_columns(prior=prior)
        .with_columns(smoothed_rate=smoothed)
        .with_columns(
            pxi=pl.when(scored).then(interp(pl.col("smoothed_rate"), rules.pxi_knots)),
            status=pl.when(scored).then(pl.lit("scored")).otherwise(pl.lit("insufficient_orders")),
        )
        .with_columns(category_percentile=share_strictly_below("pxi", "category_id"))
        .drop("prior")
    )
