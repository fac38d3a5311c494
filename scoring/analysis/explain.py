"""What a merchant should fix: the next-tier target [下一档目标值] of each indicator and of PXI.

A score is a piecewise-linear function of the *smoothed* value through the knots of the rules
(SCORING.md 5.3), so the natural "next tier" is the next knot in the better direction: the value
at which the indicator earns that knot's score. Two details make that more than "the next knot":

- Knots may be flat (two knots with the same score), and below the worst knot the score is flat
  too (a shop at 0.75 on-time pickup scores 3.0, and so does one at 0.80). Reaching a knot whose
  score is no higher than the current one gains nothing, so the target is the nearest knot beyond
  the current value *whose score is strictly higher* than the current score.
- The target lives on the smoothed scale, which a merchant does not control directly: it mixes
  their own numerator and denominator with the category prior. `raw_target` translates it back:
  the shop's own rate (or mean hours) over its current denominator that gives exactly that
  smoothed value, from `smoothed = (numerator + k x prior) / (denominator + k)`. It is null when
  no value is possible at the current volume (e.g. a lower-is-better rate would have to go below
  zero because the prior alone keeps the smoothed value above the target).

Pure Polars, no I/O: the pipeline joins published rows and rules, this module does the reasoning.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from scoring.catalog import INDICATOR_BY_ID, INDICATORS, Direction
from scoring.interp import interp
from scoring.rules import Knots, Rules
from scoring.shop_score import MAX_SCORE, attach_rules

# The columns `with_next_tier` adds to shop x indicator rows, and what each one means.
NEXT_TIER_COLUMNS: dict[str, str] = {
    "better": "'higher' or 'lower': which way the indicator improves",
    "target_value": "next knot on the smoothed-value scale (null when at best or not assessed)",
    "target_score": "indicator score at target_value (that knot's score)",
    "at_best": "the smoothed value already earns the best score of the knots",
    "score_gain": "shop score points gained by reaching target_value, all else equal",
    "raw_target": "own raw value over the current denominator that gives target_value",
}


def next_knot(value: pl.Expr, knots: Knots, better: Direction) -> tuple[pl.Expr, pl.Expr]:
    """(target value, target score): the nearest knot beyond `value` in the better direction
    whose score is strictly higher than `interp(value, knots)`; both null when there is none
    (already at the best score) or when `value` is null.

    Knots are sorted by value (the rules parser does it), so walking them from the current value
    toward the better end, the first match is the nearest one.
    """
    current = interp(value, knots)
    walk = knots if better == "higher" else tuple(reversed(knots))
    target_value = pl.when(pl.lit(False)).then(pl.lit(None, pl.Float64))
    target_score = pl.when(pl.lit(False)).then(pl.lit(None, pl.Float64))
    for x, y in walk:
        beyond = value < x if better == "higher" else value > x
        hit = beyond & (pl.lit(y) > current)
        target_value = target_value.when(hit).then(pl.lit(x, pl.Float64))
        target_score = target_score.when(hit).then(pl.lit(y, pl.Float64))
    return target_value.cast(pl.Float64), target_score.cast(pl.Float64)


def raw_equivalent(
    raw: pl.Expr,
    smoothed: pl.Expr,
    target: pl.Expr,
    denominator: pl.Expr,
    k: pl.Expr | float,
    better: pl.Expr,
) -> pl.Expr:
    """The raw value over the same denominator whose smoothed value is `target`.

    With the prior held fixed, smoothed moves by `Δraw x n / (n + k)`, so
    `raw_target = raw + (target - smoothed) x (n + k) / n`. Null when n is 0 (the shop's own
    rows do not move its smoothed value) or when the answer is impossible: below 0 for a
    lower-is-better indicator, above 1 for a higher-is-better one (all of which are rates).
    """
    needed = raw + (target - smoothed) * (denominator + k) / denominator
    possible = pl.when(better == "higher").then(needed <= 1.0).otherwise(needed >= 0.0)
    return pl.when((denominator > 0) & possible).then(needed).cast(pl.Float64)


def _by_rule_set(rules: Rules, build: Callable[[Knots, Direction], pl.Expr]) -> pl.Expr:
    """`build(knots, better)` for each row's indicator, with the knots of its rule set.

    Rows carry `indicator` and `rule_category` (see `with_rule_category`); the dispatch mirrors
    `scoring.shop_score.indicator_score`, so targets use exactly the knots that scored the shop.
    """
    is_indicator = pl.col("indicator").__eq__
    expr = pl.when(pl.lit(False)).then(pl.lit(None, pl.Float64))
    for category, rule_set in rules.categories.items():
        for ind in INDICATORS:
            knots = rule_set.indicators[ind.id].knots
            if knots != rules.default.indicators[ind.id].knots:
                expr = expr.when(is_indicator(ind.id) & (pl.col("rule_category") == category)).then(
                    build(knots, ind.better)
                )
    for ind in INDICATORS:
        expr = expr.when(is_indicator(ind.id)).then(
            build(rules.default.indicators[ind.id].knots, ind.better)
        )
    return expr.cast(pl.Float64)


def with_next_tier(indicators: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Add the columns of `NEXT_TIER_COLUMNS` to shop x indicator rows.

    Input: rows of `shop_indicators` (at least shop_id, indicator, numerator, denominator,
    raw_value, smoothed_value, indicator_score, points_lost) with the shop's `main_category_id`.
    Overrides apply by main category (12.10) and so do the knots and `k` used here.
    """
    smoothed = pl.col("smoothed_value")
    better = pl.col("indicator").replace_strict(
        {i: ind.better for i, ind in INDICATOR_BY_ID.items()}, return_dtype=pl.String
    )
    rows = attach_rules(indicators, rules).drop("weight", "dim_weight", strict=False)
    rows = rows.with_columns(
        better=better,
        target_value=_by_rule_set(rules, lambda knots, b: next_knot(smoothed, knots, b)[0]),
        target_score=_by_rule_set(rules, lambda knots, b: next_knot(smoothed, knots, b)[1]),
    )
    gain = (
        pl.col("points_lost")
        * (pl.col("target_score") - pl.col("indicator_score"))
        / (MAX_SCORE - pl.col("indicator_score"))
    )
    return rows.with_columns(
        at_best=pl.when(smoothed.is_not_null()).then(pl.col("target_value").is_null()),
        score_gain=pl.when(pl.col("target_value").is_not_null()).then(gain),
        raw_target=raw_equivalent(
            pl.col("raw_value"),
            smoothed,
            pl.col("target_value"),
            pl.col("denominator"),
            pl.col("k"),
            pl.col("better"),
        ),
    ).drop("rule_category", "k")


def item_next_tier(items: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Add PXI targets to rows of `item_scores`: the next PXI knot on the smoothed problem rate.

    `target_rate` (smoothed problem rate to reach, lower is better), `target_pxi`, `at_best`,
    `pxi_gain` (PXI points gained; null for unscored items) and `raw_target` (the item's own
    problem rate over its current paid orders that gives `target_rate`).
    """
    smoothed = pl.col("smoothed_rate")
    target_rate, target_pxi = next_knot(smoothed, rules.pxi_knots, "lower")
    raw = pl.when(pl.col("paid_orders") > 0).then(pl.col("problem_orders") / pl.col("paid_orders"))
    return items.with_columns(target_rate=target_rate, target_pxi=target_pxi).with_columns(
        at_best=pl.when(smoothed.is_not_null()).then(pl.col("target_rate").is_null()),
        pxi_gain=pl.col("target_pxi") - pl.col("pxi"),
        raw_target=raw_equivalent(
            raw,
            smoothed,
            pl.col("target_rate"),
            pl.col("paid_orders"),
            rules.k_item,
            pl.lit("lower"),
        ),
    )


def points_lost_by_dimension(indicators: pl.LazyFrame) -> pl.LazyFrame:
    """Per shop and dimension: the points lost summed over its indicators (null when none is
    assessed), so a merchant sees which third of the score to work on first."""
    return (
        indicators.group_by("shop_id", "dimension")
        .agg(
            points_lost=pl.when(pl.col("assessed").any()).then(pl.col("points_lost").sum()),
        )
        .sort("shop_id", "dimension")
    )


__all__ = [
    "NEXT_TIER_COLUMNS",
    "item_next_tier",
    "next_knot",
    "points_lost_by_dimension",
    "raw_equivalent",
    "with_next_tier",
]
