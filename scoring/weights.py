"""Traffic weights and privileges (SCORING.md 9, reading 12.17).

The daily clamp keeps a shop's traffic from jumping more than `max_daily_change` in a night, so one
bad day moves buyers gradually rather than all at once.
"""

from __future__ import annotations

import polars as pl

from scoring.interp import interp
from scoring.rules import Rules

NEUTRAL_WEIGHT = 1.0  # unscored shops and items: new sellers are not punished


def refund_only_tier(rules: Rules) -> pl.Expr:
    score = pl.col("score")
    return (
        pl.when(score >= rules.autonomous_min_score)
        .then(pl.lit("autonomous"))
        .when(score >= rules.negotiate_first_min_score)
        .then(pl.lit("negotiate_first"))
        .otherwise(pl.lit("standard"))
    )


def shop_traffic_weights(shops: pl.LazyFrame, previous: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """target_weight from the score; weight = target clamped to +/- max_daily_change of D-1's."""
    m = rules.max_daily_change
    target = (
        pl.when(pl.col("score").is_null())
        .then(NEUTRAL_WEIGHT)
        .otherwise(interp(pl.col("score"), rules.shop_weight_knots))
    )
    w = pl.col("previous_weight")
    return (
        shops.select("shop_id", "score")
        .join(previous.select("shop_id", previous_weight="weight"), on="shop_id", how="left")
        .with_columns(target_weight=target)
        .with_columns(
            weight=pl.when(w.is_null())
            .then(pl.col("target_weight"))
            .otherwise(pl.col("target_weight").clip(w * (1 - m), w * (1 + m))),
            refund_only_tier=refund_only_tier(rules),
            campaign_eligible=(pl.col("score") >= rules.campaign_min_score).fill_null(False),
        )
        .select("shop_id", "target_weight", "weight", "refund_only_tier", "campaign_eligible")
    )


def item_traffic_weights(items: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Item weight from its PXI (not clamped); an unscored item is neutral and not eligible."""
    return items.select(
        "item_id",
        "shop_id",
        weight=pl.when(pl.col("pxi").is_null())
        .then(NEUTRAL_WEIGHT)
        .otherwise(interp(pl.col("pxi"), rules.item_weight_knots)),
        campaign_eligible=(pl.col("pxi") >= rules.campaign_min_pxi).fill_null(False),
    )
