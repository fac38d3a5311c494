"""From indicator counts to the 3.0-5.0 shop score (SCORING.md 5 and 6).

counts -> rules per shop -> prior -> smoothed value -> indicator score -> effective weights ->
dimension scores -> bonus -> score, band, display score, peer percentile.
"""

from __future__ import annotations

import polars as pl

from scoring.catalog import DIMENSIONS, INDICATORS
from scoring.interp import interp
from scoring.rules import Rules

MAX_SCORE = 5.0


def with_rule_category(frame: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """`rule_category`: the shop's main category when it has overrides, else null (12.10)."""
    overridden = list(rules.categories)
    return frame.with_columns(
        rule_category=pl.when(pl.col("main_category_id").is_in(overridden))
        .then(pl.col("main_category_id"))
        .cast(pl.Int32)
    )


def attach_rules(counts: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Each shop x indicator row gets the weight, k and dimension weight of its rule set."""
    table = rules.indicator_table().lazy().drop("dimension")
    return with_rule_category(counts, rules).join(
        table, on=["rule_category", "indicator"], how="left", nulls_equal=True
    )


def with_priors(counts: pl.LazyFrame) -> pl.LazyFrame:
    """Prior per indicator and main category, pooled over shops with a non-zero denominator.

    A category with no denominator, and a shop without a main category, fall back to the pool of
    all shops. An indicator whose whole-run pool is empty is not assessed (12.9).
    """
    contributing = counts.filter(pl.col("denominator") > 0)
    by_category = (
        contributing.filter(pl.col("main_category_id").is_not_null())
        .group_by("indicator", "main_category_id")
        .agg(category_num=pl.col("numerator").sum(), category_den=pl.col("denominator").sum())
    )
    overall = contributing.group_by("indicator").agg(
        all_num=pl.col("numerator").sum(), all_den=pl.col("denominator").sum()
    )
    assessed = (pl.col("all_den") > 0).fill_null(False)
    return (
        counts.join(by_category, on=["indicator", "main_category_id"], how="left")
        .join(overall, on="indicator", how="left")
        .with_columns(
            assessed=assessed,
            prior=pl.when(pl.col("category_den") > 0)
            .then(pl.col("category_num") / pl.col("category_den"))
            .when(assessed)
            .then(pl.col("all_num") / pl.col("all_den")),
        )
        .drop("category_num", "category_den", "all_num", "all_den")
    )


def shrink_toward_prior() -> pl.Expr:
    """`(numerator + k x prior) / (denominator + k)`; a shop with no denominator gets the prior."""
    return (
        pl.when(pl.col("denominator") == 0)
        .then(pl.col("prior"))
        .otherwise(
            (pl.col("numerator") + pl.col("k") * pl.col("prior"))
            / (pl.col("denominator") + pl.col("k"))
        )
    )


def indicator_score(rules: Rules) -> pl.Expr:
    """interp(smoothed_value, knots) with the knots of the shop's rule set."""
    smoothed = pl.col("smoothed_value")
    is_indicator = pl.col("indicator").__eq__
    expr = pl.when(False).then(None)
    for category, rule_set in rules.categories.items():
        for ind in INDICATORS:
            knots = rule_set.indicators[ind.id].knots
            if knots != rules.default.indicators[ind.id].knots:
                expr = expr.when(is_indicator(ind.id) & (pl.col("rule_category") == category)).then(
                    interp(smoothed, knots)
                )
    for ind in INDICATORS:
        expr = expr.when(is_indicator(ind.id)).then(
            interp(smoothed, rules.default.indicators[ind.id].knots)
        )
    return expr.cast(pl.Float64)


def with_effective_weights(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Spread the weight of not-assessed indicators and dimensions over the assessed ones (12.11).

    `effective_weight = weight x sum of the dimension's weights / sum of its assessed weights`;
    likewise a dimension with nothing assessed gives its weight to the others in proportion.
    When nothing is missing the weights are used as they are, so no rounding creeps in.
    """
    per_dim = ["shop_id", "dimension"]
    dim_total = pl.col("weight").sum().over(per_dim)
    assessed_total = pl.col("weight").filter(pl.col("assessed")).sum().over(per_dim)
    rows = rows.with_columns(dim_total=dim_total, assessed_total=assessed_total).with_columns(
        dim_assessed=pl.col("assessed_total") > 0
    )
    first_of_dim = pl.int_range(pl.len()).over(per_dim) == 0
    dim_weight_sum = pl.col("dim_weight").filter(first_of_dim).sum().over("shop_id")
    assessed_dim_weight_sum = (
        pl.col("dim_weight").filter(first_of_dim & pl.col("dim_assessed")).sum().over("shop_id")
    )
    return rows.with_columns(
        effective_weight=pl.when(~pl.col("assessed") | ~pl.col("dim_assessed"))
        .then(0.0)
        .when(pl.col("assessed_total") == pl.col("dim_total"))
        .then(pl.col("weight"))
        .otherwise(pl.col("weight") * pl.col("dim_total") / pl.col("assessed_total")),
        effective_dim_weight=pl.when(~pl.col("dim_assessed"))
        .then(0.0)
        .when(assessed_dim_weight_sum == dim_weight_sum)
        .then(pl.col("dim_weight"))
        .otherwise(pl.col("dim_weight") * dim_weight_sum / assessed_dim_weight_sum),
    ).drop("dim_total", "assessed_total")


def scored_indicators(counts: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """shop x indicator rows with prior, smoothed value, score, effective weight, points lost."""
    rows = with_priors(attach_rules(counts, rules)).with_columns(
        raw_value=pl.when(pl.col("denominator") > 0).then(
            pl.col("numerator") / pl.col("denominator")
        ),
        smoothed_value=pl.when(pl.col("assessed")).then(shrink_toward_prior()),
    )
    rows = with_effective_weights(rows.with_columns(indicator_score=indicator_score(rules)))
    return rows.with_columns(
        points_lost=pl.when(pl.col("assessed")).then(
            pl.col("effective_dim_weight")
            * pl.col("effective_weight")
            * (MAX_SCORE - pl.col("indicator_score"))
        )
    )


def dimension_scores(indicators: pl.LazyFrame) -> pl.LazyFrame:
    """Per shop: `<dimension>_score` and the sum of effective dimension weight x dimension score."""
    per_dim = (
        indicators.filter(pl.col("assessed"))
        .group_by("shop_id", "dimension")
        .agg(
            dimension_score=(pl.col("effective_weight") * pl.col("indicator_score")).sum(),
            effective_dim_weight=pl.col("effective_dim_weight").first(),
        )
        .filter(pl.col("effective_dim_weight") > 0)
    )
    return per_dim.group_by("shop_id").agg(
        *[
            pl.col("dimension_score").filter(pl.col("dimension") == d).first().alias(f"{d}_score")
            for d in DIMENSIONS
        ],
        weighted_score=(pl.col("effective_dim_weight") * pl.col("dimension_score")).sum(),
    )


def share(part: str, whole: str) -> pl.Expr:
    """part / whole, null when whole is 0."""
    return pl.when(pl.col(whole) > 0).then(pl.col(part) / pl.col(whole))


def bonus_shares() -> dict[str, pl.Expr]:
    """The two bonus items of section 4, as shares of |V|."""
    return {
        "return_insurance_share": share("return_insured_orders", "valid_orders"),
        "next_day_delivery_share": share("next_day_orders", "valid_orders"),
    }


def bonus_points(rules: Rules) -> pl.Expr:
    """Sum of the points of the bonus items whose share reaches its threshold."""
    points = [
        pl.when(pl.col(item) >= rule.threshold).then(rule.points).otherwise(0.0)
        for item, rule in rules.bonus.items()
    ]
    return pl.sum_horizontal(points)


def band(score: pl.Expr) -> pl.Expr:
    return (
        pl.when(score.is_null())
        .then(pl.lit("unscored"))
        .when(score >= 4.8)
        .then(pl.lit("4.8+"))
        .when(score >= 4.5)
        .then(pl.lit("4.5-4.8"))
        .when(score >= 4.0)
        .then(pl.lit("4.0-4.5"))
        .otherwise(pl.lit("<4.0"))
    )


def share_strictly_below(value: str, group: str) -> pl.Expr:
    """Among non-null `value`s of the same `group`: count of others strictly lower / (n - 1).

    Null for a null value and for a group of one.
    """
    scored = pl.col(value).is_not_null()
    n = scored.sum().over(group)
    lower = pl.col(value).rank("min").over(group) - 1
    return pl.when(scored & (n > 1)).then(lower.cast(pl.Float64) / (n - 1).cast(pl.Float64))


def shop_scores(activity: pl.LazyFrame, indicators: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """One row per shop: status, score, display score, band, dimension scores, bonus, percentile."""
    scored = pl.col("valid_orders") >= rules.min_orders
    score = pl.when(scored).then(
        pl.min_horizontal(pl.col("weighted_score") + pl.col("bonus"), pl.lit(MAX_SCORE))
    )
    return (
        activity.with_columns(**bonus_shares())
        .with_columns(bonus=bonus_points(rules))
        .join(dimension_scores(indicators), on="shop_id", how="left")
        .with_columns(
            status=pl.when(scored).then(pl.lit("scored")).otherwise(pl.lit("insufficient_orders")),
            score=score,
        )
        .with_columns(
            score_display=(pl.col("score") * 10).floor() / 10,
            band=band(pl.col("score")),
            peer_percentile=share_strictly_below("score", "main_category_id"),
        )
    )
