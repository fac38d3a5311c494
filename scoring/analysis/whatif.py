"""What-if comparison of two rule sets scored over the same date: pure frames in, frames out.

A rules revision moves traffic between real shops, so before it goes live an operator must see
who wins and who loses. Both sides here are the six tables `scoring.daily.score_facts` produced
for one date (old = the rules in force, new = the candidate); nothing in this module scores,
reads or writes anything. Every function takes LazyFrames and returns LazyFrames (or, for the
rules themselves, compares the parsed `Rules`), so the report is one plan per section and the
comparison can never drift from the one implementation of the rules.

Vocabulary used throughout: a shop *moves* when its band changes; its *score change* is
new - old (null when either side is unscored); a *driver* is an indicator (or the bonus) whose
contribution to the score changed, measured as the change in `points_lost` (SCORING.md 6: the
points lost plus the score, minus the bonus, is 5.0, so these effects add up to the score change
whenever the 5.0 cap does not bind).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from scoring.catalog import BANDS, INDICATORS, LABELS
from scoring.rules import Rules, RuleSet

Tables = Mapping[str, pl.LazyFrame]

ABSENT = "absent"  # band of a shop present on one side only (possible only when windows differ)
RANKED_BANDS: tuple[str, ...] = ("<4.0", "4.0-4.5", "4.5-4.8", "4.8+")  # worst to best
TIERS: tuple[str, ...] = ("autonomous", "negotiate_first", "standard")
BONUS_DRIVER = "bonus"
DRIVERS_PER_SHOP = 3
TOP_MOVERS = 20
# Same inputs through the same code give bit-identical numbers; anything smaller than this is
# summation noise, never a rule effect worth showing a merchant.
NEGLIGIBLE = 1e-12

_SHOP_COLUMNS = ("main_category_id", "status", "score", "band", "bonus")
_WEIGHT_COLUMNS = ("target_weight", "weight", "refund_only_tier", "campaign_eligible")


def same_window(base: Rules, new: Rules) -> bool:
    """Whether both rule sets see the same facts: the facts depend only on zone, window length
    and exemptions (which change which rows the sums count, 13.3).

    Only then can one `DayFacts` be scored under both; otherwise each side needs its own.
    """
    return (
        base.timezone == new.timezone
        and base.window_days == new.window_days
        and base.exemptions == new.exemptions
    )


def migration_bands(facts_shared: bool) -> tuple[str, ...]:
    """Rows and columns of the migration matrix: `absent` only when the shop sets can differ."""
    return BANDS if facts_shared else (*BANDS, ABSENT)


def _band_rank(band: pl.Expr) -> pl.Expr:
    """0 (<4.0) .. 3 (4.8+); null for `unscored` and `absent`, which are not above or below."""
    return band.replace_strict(
        {b: i for i, b in enumerate(RANKED_BANDS)}, default=None, return_dtype=pl.Int8
    )


def band_direction(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """`same`, `up`, `down`, or `other` (to or from `unscored` / `absent`: neither up nor down)."""
    rank_old, rank_new = _band_rank(old), _band_rank(new)
    return (
        pl.when(old == new)
        .then(pl.lit("same"))
        .when(rank_new > rank_old)
        .then(pl.lit("up"))
        .when(rank_new < rank_old)
        .then(pl.lit("down"))
        .otherwise(pl.lit("other"))
    )


def _band_order(band: pl.Expr, bands: Sequence[str]) -> pl.Expr:
    """Position of a band in the report's order (best first), for sorting."""
    return band.replace_strict({b: i for i, b in enumerate(bands)}, return_dtype=pl.Int8)


def _side(tables: Tables, suffix: str) -> pl.LazyFrame:
    """One row per shop of one side: score, band, bonus, weights, tier, campaign flag."""
    shops = tables["shop_scores"].select("shop_id", *_SHOP_COLUMNS)
    weights = tables["shop_traffic_weights"].select("shop_id", *_WEIGHT_COLUMNS)
    columns = (*_SHOP_COLUMNS, *_WEIGHT_COLUMNS)
    return shops.join(weights, on="shop_id", how="left").rename(
        {c: f"{c}_{suffix}" for c in columns}
    )


def shop_changes(old: Tables, new: Tables) -> pl.LazyFrame:
    """One row per shop of either side: old and new score, band, weights, tier and their changes.

    `main_category_id` is the new side's (the old one's for a shop only there); it depends only
    on the facts, so it is the same on both sides whenever the facts are shared. A shop missing
    on one side has band `absent` there and counts with weight 0 in the changes: it would get no
    traffic from that side's table at all.
    """
    diff = {
        "score_change": pl.col("score_new") - pl.col("score_old"),
        "target_weight_change": pl.col("target_weight_new").fill_null(0.0)
        - pl.col("target_weight_old").fill_null(0.0),
        "weight_change": pl.col("weight_new").fill_null(0.0) - pl.col("weight_old").fill_null(0.0),
    }
    return (
        _side(old, "old")
        .join(_side(new, "new"), on="shop_id", how="full", coalesce=True)
        .with_columns(
            main_category_id=pl.coalesce("main_category_id_new", "main_category_id_old"),
            band_old=pl.col("band_old").fill_null(ABSENT),
            band_new=pl.col("band_new").fill_null(ABSENT),
            **diff,
        )
        .with_columns(direction=band_direction(pl.col("band_old"), pl.col("band_new")))
        .drop("main_category_id_old", "main_category_id_new")
        .sort("shop_id")
    )


def change_summary(changes: pl.LazyFrame) -> pl.LazyFrame:
    """One row: how many shops, how many scored on each side, how many moved and which way."""
    score_change = pl.col("score_change")
    return changes.select(
        shops=pl.len().cast(pl.Int64),
        scored_old=(pl.col("status_old") == "scored").sum().cast(pl.Int64),
        scored_new=(pl.col("status_new") == "scored").sum().cast(pl.Int64),
        band_changed=(pl.col("direction") != "same").sum().cast(pl.Int64),
        moved_up=(pl.col("direction") == "up").sum().cast(pl.Int64),
        moved_down=(pl.col("direction") == "down").sum().cast(pl.Int64),
        moved_other=(pl.col("direction") == "other").sum().cast(pl.Int64),
        score_up=(score_change > NEGLIGIBLE).sum().cast(pl.Int64),
        score_down=(score_change < -NEGLIGIBLE).sum().cast(pl.Int64),
        mean_score_change=score_change.mean(),
        weight_changed=(pl.col("weight_change").abs() > NEGLIGIBLE).sum().cast(pl.Int64),
        target_weight_changed=(pl.col("target_weight_change").abs() > NEGLIGIBLE)
        .sum()
        .cast(pl.Int64),
    )


def band_migration(
    changes: pl.LazyFrame, bands: Sequence[str] = BANDS, by: str | None = None
) -> pl.LazyFrame:
    """Shops from each old band to each new band: the full grid, zeros included.

    With `by` (e.g. `main_category_id`) one grid per value of that column present in `changes`.
    Columns: [by], band_old, band_new, shops, direction; sorted by [by], then band order (best
    first), so a grid reads row by row as the matrix.
    """
    keys = [by] if by else []
    counts = changes.group_by(*keys, "band_old", "band_new").agg(shops=pl.len().cast(pl.Int64))
    grid = pl.LazyFrame({"band_old": list(bands)}).join(
        pl.LazyFrame({"band_new": list(bands)}), how="cross"
    )
    if by:
        grid = changes.select(by).unique().join(grid, how="cross")
    return (
        grid.join(counts, on=[*keys, "band_old", "band_new"], how="left", nulls_equal=True)
        .with_columns(
            pl.col("shops").fill_null(0),
            direction=band_direction(pl.col("band_old"), pl.col("band_new")),
        )
        .sort(
            [*keys, _band_order(pl.col("band_old"), bands), _band_order(pl.col("band_new"), bands)],
            nulls_last=True,
        )
    )


def migration_moves(migration: pl.LazyFrame) -> pl.LazyFrame:
    """The off-diagonal, non-empty cells of a migration grid: the shops that changed band."""
    return migration.filter((pl.col("direction") != "same") & (pl.col("shops") > 0))


def _share_counts(tables: Tables) -> pl.LazyFrame:
    """metric, of, count, total for one side, in the report's order."""
    shops = tables["shop_scores"]
    weights = tables["shop_traffic_weights"]
    items = tables["item_traffic_weights"]
    as_int = pl.Int64
    parts = [
        shops.select(
            metric=pl.lit("4.8+ shops"),
            of=pl.lit("scored shops"),
            count=(pl.col("band") == "4.8+").sum().cast(as_int),
            total=(pl.col("status") == "scored").sum().cast(as_int),
        ),
        weights.select(
            metric=pl.lit("campaign-eligible shops"),
            of=pl.lit("shops"),
            count=pl.col("campaign_eligible").sum().cast(as_int),
            total=pl.len().cast(as_int),
        ),
        items.select(
            metric=pl.lit("campaign-eligible items"),
            of=pl.lit("items"),
            count=pl.col("campaign_eligible").sum().cast(as_int),
            total=pl.len().cast(as_int),
        ),
        weights.select(
            total=pl.len().cast(as_int),
            **{
                f"refund-only tier {t}": (pl.col("refund_only_tier") == t).sum().cast(as_int)
                for t in TIERS
            },
        )
        .unpivot(index="total", variable_name="metric", value_name="count")
        .select("metric", of=pl.lit("shops"), count="count", total="total"),
    ]
    return pl.concat(parts, how="vertical").with_row_index("order")


def share_changes(old: Tables, new: Tables) -> pl.LazyFrame:
    """Share of 4.8+ shops, campaign-eligible shops and items, and each refund-only tier.

    Columns: metric, of (the denominator), count/total/share for each side, count_change and
    share_change (new - old, as a fraction; the report shows it in percentage points).
    """

    def shares(tables: Tables, suffix: str) -> pl.LazyFrame:
        return (
            _share_counts(tables)
            .with_columns(
                share=pl.when(pl.col("total") > 0).then(pl.col("count") / pl.col("total"))
            )
            .rename({c: f"{c}_{suffix}" for c in ("count", "total", "share")})
        )

    return (
        shares(old, "old")
        .join(shares(new, "new").drop("of", "order"), on="metric", how="left")
        .with_columns(
            count_change=pl.col("count_new") - pl.col("count_old"),
            share_change=pl.col("share_new") - pl.col("share_old"),
        )
        .sort("order")
        .drop("order")
    )


def _share_of_total(x: pl.Expr) -> pl.Expr:
    """Each row's share of the column total; null when there is no total (no NaN in the JSON)."""
    return pl.when(x.sum() > 0).then(x / x.sum())


def _with_totals_and_shares(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """Add each side's share of all weight, and the changes, to per-category weight sums."""
    out = frame
    for column in ("weight", "target_weight"):
        old, new = pl.col(f"{column}_old"), pl.col(f"{column}_new")
        out = out.with_columns(
            (new - old).alias(f"{column}_change"),
            _share_of_total(old).alias(f"{column}_share_old"),
            _share_of_total(new).alias(f"{column}_share_new"),
        ).with_columns(
            (pl.col(f"{column}_share_new") - pl.col(f"{column}_share_old")).alias(
                f"{column}_share_change"
            )
        )
    return out.sort(key, nulls_last=True)


def shop_weight_by_category(changes: pl.LazyFrame) -> pl.LazyFrame:
    """Total shop traffic weight per main category before and after: does traffic change
    industries? Both the published `weight` (clamped to the daily change, i.e. what buyers see
    on the date) and `target_weight` (where the clamp converges within days) are summed.
    """
    return _with_totals_and_shares(
        changes.group_by("main_category_id").agg(
            shops=pl.len().cast(pl.Int64),
            weight_old=pl.col("weight_old").sum(),
            weight_new=pl.col("weight_new").sum(),
            target_weight_old=pl.col("target_weight_old").sum(),
            target_weight_new=pl.col("target_weight_new").sum(),
        ),
        "main_category_id",
    )


def item_weight_by_category(old: Tables, new: Tables) -> pl.LazyFrame:
    """Total item traffic weight per item category before and after (items are not clamped)."""

    def side(tables: Tables, suffix: str) -> pl.LazyFrame:
        return (
            tables["item_traffic_weights"]
            .select("item_id", "weight")
            .join(tables["item_scores"].select("item_id", "category_id"), on="item_id")
            .rename({"weight": f"weight_{suffix}", "category_id": f"category_{suffix}"})
        )

    items = side(old, "old").join(side(new, "new"), on="item_id", how="full", coalesce=True)
    per_category = items.group_by(category_id=pl.coalesce("category_new", "category_old")).agg(
        items=pl.len().cast(pl.Int64),
        weight_old=pl.col("weight_old").sum(),
        weight_new=pl.col("weight_new").sum(),
    )
    return (
        per_category.with_columns(
            weight_change=pl.col("weight_new") - pl.col("weight_old"),
            weight_share_old=_share_of_total(pl.col("weight_old")),
            weight_share_new=_share_of_total(pl.col("weight_new")),
        )
        .with_columns(weight_share_change=pl.col("weight_share_new") - pl.col("weight_share_old"))
        .sort("category_id", nulls_last=True)
    )


def indicator_drivers(
    old: Tables, new: Tables, changes: pl.LazyFrame, top: int = DRIVERS_PER_SHOP
) -> pl.LazyFrame:
    """Per shop, the indicators (and the bonus) whose contribution to the score changed most.

    `effect` is the change in the score that the item accounts for: old points_lost - new
    points_lost for an indicator (a stricter knot raises points lost, so its effect is
    negative), new bonus - old bonus for the bonus. Only non-negligible effects are kept, the
    largest `top` by size (ties in catalogue order). Columns: shop_id, drivers (a list of
    structs: indicator, effect, smoothed_value_old/new, indicator_score_old/new).
    """
    fields = ("smoothed_value", "indicator_score", "points_lost")

    def side(tables: Tables, suffix: str) -> pl.LazyFrame:
        return (
            tables["shop_indicators"]
            .select("shop_id", "indicator", *fields)
            .rename({f: f"{f}_{suffix}" for f in fields})
        )

    indicators = (
        side(old, "old")
        .join(side(new, "new"), on=["shop_id", "indicator"], how="full", coalesce=True)
        .with_columns(
            effect=pl.col("points_lost_old").fill_null(0.0)
            - pl.col("points_lost_new").fill_null(0.0)
        )
        .drop("points_lost_old", "points_lost_new")
    )
    bonus = changes.select(
        "shop_id",
        indicator=pl.lit(BONUS_DRIVER),
        effect=pl.col("bonus_new").fill_null(0.0) - pl.col("bonus_old").fill_null(0.0),
    )
    order = {ind.id: i for i, ind in enumerate(INDICATORS)} | {BONUS_DRIVER: len(INDICATORS)}
    driver = pl.struct(
        "indicator",
        "effect",
        "smoothed_value_old",
        "smoothed_value_new",
        "indicator_score_old",
        "indicator_score_new",
    )
    return (
        pl.concat([indicators, bonus], how="diagonal_relaxed")
        .filter(pl.col("effect").abs() > NEGLIGIBLE)
        .with_columns(order=pl.col("indicator").replace_strict(order, return_dtype=pl.Int32))
        .group_by("shop_id")
        .agg(
            drivers=driver.sort_by(
                [pl.col("effect").abs(), pl.col("order")], descending=[True, False]
            ).head(top)
        )
        .sort("shop_id")
    )


def top_movers(
    changes: pl.LazyFrame, drivers: pl.LazyFrame, n: int = TOP_MOVERS
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The `n` shops with the largest traffic-weight gains, and the `n` with the largest losses.

    Ranked by the change in `target_weight`: that is where the shop's traffic settles once the
    daily clamp has caught up, i.e. the lasting effect of the rules; the clamped day-one
    `weight` change is carried alongside. Ties: the larger score change, then shop id. Shops
    whose target did not change are in neither list, so identical rules give two empty lists.
    """
    movers = changes.join(drivers, on="shop_id", how="left")
    change, score = pl.col("target_weight_change"), pl.col("score_change").fill_null(0.0)
    gains = (
        movers.filter(change > NEGLIGIBLE)
        .sort([change, score, pl.col("shop_id")], descending=[True, True, False])
        .head(n)
    )
    losses = (
        movers.filter(change < -NEGLIGIBLE)
        .sort([change, score, pl.col("shop_id")], descending=[False, False, False])
        .head(n)
    )
    return gains, losses


def label_changes(old: Tables, new: Tables) -> pl.LazyFrame:
    """Per label of the catalogue: shops holding it on each side, and how many gained / lost it.

    Both sides start from the same labels held on D-1, so a difference is the rules' doing.
    """

    def held(tables: Tables, flag: str) -> pl.LazyFrame:
        return (
            tables["shop_labels"].select("shop_id", "label").with_columns(pl.lit(True).alias(flag))
        )

    both = (
        held(old, "in_old")
        .join(held(new, "in_new"), on=["shop_id", "label"], how="full", coalesce=True)
        .with_columns(pl.col("in_old", "in_new").fill_null(False))
    )
    per_label = both.group_by("label").agg(
        held_old=pl.col("in_old").sum().cast(pl.Int64),
        held_new=pl.col("in_new").sum().cast(pl.Int64),
        gained=(pl.col("in_new") & ~pl.col("in_old")).sum().cast(pl.Int64),
        lost=(pl.col("in_old") & ~pl.col("in_new")).sum().cast(pl.Int64),
    )
    catalogue = pl.LazyFrame({"label": [label.id for label in LABELS]}).with_row_index("order")
    counts = ("held_old", "held_new", "gained", "lost")
    return (
        catalogue.join(per_label, on="label", how="left")
        .with_columns(pl.col(counts).fill_null(0))
        .with_columns(net=pl.col("held_new") - pl.col("held_old"))
        .sort("order")
        .drop("order")
    )


def whatif_frames(
    old: Tables, new: Tables, facts_shared: bool = True, top_n: int = TOP_MOVERS
) -> dict[str, pl.LazyFrame]:
    """Every section of the what-if report as one LazyFrame each (collect them together)."""
    bands = migration_bands(facts_shared)
    changes = shop_changes(old, new)
    drivers = indicator_drivers(old, new, changes)
    gains, losses = top_movers(changes, drivers, top_n)
    by_category = band_migration(changes, bands, by="main_category_id")
    return {
        "summary": change_summary(changes),
        "shop_changes": changes,
        "migration": band_migration(changes, bands),
        "migration_by_category": by_category,
        "moves_by_category": migration_moves(by_category),
        "shares": share_changes(old, new),
        "shop_weight_by_category": shop_weight_by_category(changes),
        "item_weight_by_category": item_weight_by_category(old, new),
        "top_gains": gains,
        "top_losses": losses,
        "labels": label_changes(old, new),
    }


# --------------------------------------------------------------------------------------------
# which rules differ


# Fields of `Rules` that the TOML file keeps in its [privileges] table.
_PRIVILEGES = (
    "autonomous_min_score",
    "negotiate_first_min_score",
    "campaign_min_score",
    "campaign_min_pxi",
)


def _flatten(prefix: str, value: Any, leaves: dict[str, Any]) -> None:
    """Dataclasses and mappings become dotted paths; anything else (numbers, knots) is a leaf."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.compare:
                _flatten(f"{prefix}{f.name}.", getattr(value, f.name), leaves)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}{key}.", item, leaves)
    else:
        leaves[prefix.rstrip(".")] = value


def _rule_set_leaves(rule_set: RuleSet) -> dict[str, Any]:
    """The keys a category override may name (12.10), as in the TOML: `indicators.<id>.knots`."""
    leaves: dict[str, Any] = {}
    _flatten("", rule_set, leaves)
    return leaves


def _rules_leaves(rules: Rules) -> dict[str, Any]:
    """Every rule except the category overrides, keyed by its dotted path in the TOML file.

    Walks the `Rules` dataclass rather than listing keys, so a section added to the rules later
    (say, new thresholds) is compared too instead of silently left out of the report. The
    exemptions, a list in the file, are keyed by their unique names (`exemptions.<name>`, one
    leaf each), so adding one is one row rather than a new version of the whole list.
    """
    leaves: dict[str, Any] = {}
    for f in dataclasses.fields(rules):
        value = getattr(rules, f.name)
        if not f.compare or f.name == "categories":
            continue
        if f.name == "default":
            leaves.update(_rule_set_leaves(value))  # top-level dimension_weights, indicators
        elif f.name == "exemptions":
            leaves.update(
                {
                    f"exemptions.{e.name}": {k: v for k, v in e.as_data().items() if k != "name"}
                    for e in value
                }
            )
        elif f.name in _PRIVILEGES:
            leaves[f"privileges.{f.name}"] = value
        else:
            _flatten(f"{f.name}.", value, leaves)
    return leaves


def _text(value: Any) -> str:
    """A rule value as JSON text, which reads like the TOML: knots `[[0.0, 5.0], [0.002, 4.8]]`,
    strings quoted (`"Asia/Shanghai"`); a review tool can decode every value the same way."""
    return json.dumps(value, ensure_ascii=False)


RULES_DIFF_SCHEMA = {
    "rule": pl.String,
    "scope": pl.String,
    "old": pl.String,
    "new": pl.String,
    "note": pl.String,
}


def rules_diff(old: Rules, new: Rules) -> pl.DataFrame:
    """Which rules differ, compared on the parsed rules (so formatting, comments, key order,
    `20` vs `20.0` or the order of knots never show up as changes).

    Columns: rule (dotted path as in the TOML file), scope (`all shops` or `main category N`),
    old, new (values as JSON text), note. A category line is shown only where a category's
    effective value changed *and* one side overrides it; a change of a default that categories
    simply inherit is reported once, for all shops. An exemption on one side only (the one
    rule that may be absent) shows `null` on the other, noted `new exemption` or `exemption
    removed`.
    """
    rows: list[dict[str, str | None]] = []
    old_leaves, new_leaves = _rules_leaves(old), _rules_leaves(new)
    for key in [*old_leaves, *(k for k in new_leaves if k not in old_leaves)]:
        old_value, new_value = old_leaves.get(key), new_leaves.get(key)
        if old_value != new_value:
            rows.append(
                {
                    "rule": key,
                    "scope": "all shops",
                    "old": _text(old_value),
                    "new": _text(new_value),
                    "note": (
                        "new exemption"
                        if key not in old_leaves
                        else "exemption removed"
                        if key not in new_leaves
                        else None
                    ),
                }
            )
    old_default, new_default = _rule_set_leaves(old.default), _rule_set_leaves(new.default)
    for category in sorted(set(old.categories) | set(new.categories)):
        old_set = _rule_set_leaves(old.rule_set(category))
        new_set = _rule_set_leaves(new.rule_set(category))
        for key, old_value in old_set.items():
            new_value = new_set[key]
            old_overrides = old_value != old_default[key]
            new_overrides = new_value != new_default[key]
            if old_value == new_value or not (old_overrides or new_overrides):
                continue
            if old_overrides and new_overrides:
                note = "override changed"
            elif new_overrides:
                note = "new override (old: the default)"
            else:
                note = "override removed (new: the default)"
            rows.append(
                {
                    "rule": f"categories.{category}.{key}",
                    "scope": f"main category {category}",
                    "old": _text(old_value),
                    "new": _text(new_value),
                    "note": note,
                }
            )
    return pl.DataFrame(rows, schema=RULES_DIFF_SCHEMA)
