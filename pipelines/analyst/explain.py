"""`expscore explain`: one shop's (or item's) score taken apart, from the published tables.

A merchant asks two things: "why is my score what it is?" and "what do I fix first?". The answer
is every indicator with its numerator and denominator, smoothed value, score and points lost,
sorted by points lost, and for each the next-tier target [下一档目标值]
(scoring/analysis/explain.py).
Everything is read from what `run` published for that date, so the explanation matches the score
the merchant was shown, plus the rules file for the knots (which must be the version that scored
the date: the targets would otherwise point at knots that were never used).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import InputError
from pipelines.published import resolve_date, scan_day
from scoring.analysis.explain import item_next_tier, points_lost_by_dimension, with_next_tier
from scoring.catalog import DIMENSIONS, INDICATOR_BY_ID
from scoring.daily import rules_window
from scoring.exemptions import exempted_by
from scoring.rules import Rules

# Column order of the indicator part of an explanation (JSON and text).
INDICATOR_FIELDS = (
    "indicator",
    "dimension",
    "better",
    "numerator",
    "denominator",
    "excluded",
    "exempted_by",
    "raw_value",
    "prior",
    "smoothed_value",
    "indicator_score",
    "effective_weight",
    "points_lost",
    "assessed",
)


def _check_rules(frame: pl.DataFrame, rules: Rules, what: str, day: dt.date) -> None:
    versions = frame["rules_version"].unique().to_list()
    if versions and versions != [rules.version]:
        raise InputError(
            f"explain: {what} of {day} was scored with rules version {versions[0]!r}, but the "
            f"rules given have version {rules.version!r}; pass the rules file that scored it "
            f"(--rules)"
        )


def _one_row(frame: pl.DataFrame) -> dict[str, Any]:
    return frame.row(0, named=True)


@dataclass(frozen=True)
class ShopExplanation:
    """A shop's published score on one date, taken apart; `to_json` / `to_text` render it."""

    day: dt.date
    shop: dict[str, Any]  # the shop_scores row
    traffic: dict[str, Any] | None  # the shop_traffic_weights row
    dimensions: pl.DataFrame  # dimension, score, points_lost
    indicators: pl.DataFrame  # INDICATOR_FIELDS + next-tier columns, sorted by points lost
    labels: pl.DataFrame  # label, value, display_text, since

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; next-tier fields nest under `next_tier` with the scale they use."""
        indicators = self.indicators.select(
            *INDICATOR_FIELDS,
            next_tier=pl.struct(
                applies_to=pl.lit("smoothed_value"),
                at_best=pl.col("at_best"),
                target_value=pl.col("target_value"),
                target_score=pl.col("target_score"),
                score_gain=pl.col("score_gain"),
                raw_value_needed=pl.col("raw_target"),
            ),
        )
        shop = {k: v for k, v in self.shop.items() if k not in ("dt",)}
        return {
            "kind": "shop",
            "date": self.day.isoformat(),
            **shop,
            "traffic": None
            if self.traffic is None
            else {k: v for k, v in self.traffic.items() if k not in ("shop_id", "dt")},
            "dimensions": self.dimensions.to_dicts(),
            "indicators": indicators.to_dicts(),
            "labels": self.labels.to_dicts(),
        }

    def to_text(self) -> str:
        """Plain text for a terminal or an e-mail: header, dimensions, indicators, labels."""
        s = self.shop
        lines = [
            f"shop {s['shop_id']} on {self.day} (rules {s['rules_version']}), "
            f"main category {s['main_category_id']}, {s['valid_orders']} valid orders"
        ]
        if s["status"] == "scored":
            pct = s["peer_percentile"]
            peers = "no scored peer" if pct is None else f"above {pct:.1%} of peers [超过同行]"
            lines.append(
                f"score {s['score']:.4f} (shown {s['score_display']:.1f}), band {s['band']}, "
                f"{peers}, bonus +{s['bonus']:.2f}"
            )
        else:
            lines.append(
                f"unscored: {s['status']} (fewer valid orders than the minimum); "
                f"the dimension scores and indicators below are computed all the same"
            )
        if self.traffic is not None:
            t = self.traffic
            lines.append(
                f"traffic weight {t['weight']:.3f} (target {t['target_weight']:.3f}), "
                f"refund-only tier {t['refund_only_tier']}, "
                f"campaign {'eligible' if t['campaign_eligible'] else 'not eligible'}"
            )
        lines += ["", "dimensions:", _render(_dimension_display(self.dimensions))]
        lines += [
            "",
            "indicators, most points lost first (target = next knot, on the smoothed value):",
            _render(_indicator_display(self.indicators)),
            "",
            "own value needed: your own rate (or mean hours) over the same denominator that "
            "brings the smoothed value to the target; '-' when the prior alone keeps it out of "
            "reach at the current volume.",
        ]
        if self.labels.height:
            held = self.labels.select(
                pl.format("{} {} (since {})", "label", "display_text", "since").str.join(", ")
            ).item()
            lines.append(f"labels: {held}")
        else:
            lines.append("labels: none")
        exempted = self.indicators.filter(pl.col("excluded") > 0)
        if exempted.height:
            removed = exempted.select(
                pl.format("{} {} ({})", "indicator", "excluded", "exempted_by").str.join(", ")
            ).item()
            lines.append(f"rows removed by exemptions [豁免]: {removed}")
        if s.get("appeals_upheld"):
            lines.append(
                f"upheld appeals [申诉成立]: {s['appeals_upheld']} orders, refunds or sessions "
                "removed from the window, as if the platform had flagged them"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ItemExplanation:
    """An item's PXI [商品体验分] on one date, with its next-tier target."""

    day: dt.date
    item: dict[str, Any]  # item_scores row + next-tier columns
    traffic: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        i = self.item
        base = {
            k: v
            for k, v in i.items()
            if k not in ("dt", "target_rate", "target_pxi", "at_best", "pxi_gain", "raw_target")
        }
        problem_rate = i["problem_orders"] / i["paid_orders"] if i["paid_orders"] else None
        return {
            "kind": "item",
            "date": self.day.isoformat(),
            **base,
            "problem_rate": problem_rate,
            "traffic": None
            if self.traffic is None
            else {k: v for k, v in self.traffic.items() if k not in ("item_id", "shop_id", "dt")},
            "next_tier": {
                "applies_to": "smoothed_rate",
                "at_best": i["at_best"],
                "target_rate": i["target_rate"],
                "target_pxi": i["target_pxi"],
                "pxi_gain": i["pxi_gain"],
                "raw_rate_needed": i["raw_target"],
            },
        }

    def to_text(self) -> str:
        i = self.item
        lines = [
            f"item {i['item_id']} of shop {i['shop_id']} on {self.day} (rules "
            f"{i['rules_version']}), category {i['category_id']}",
            f"problem orders {i['problem_orders']} of {i['paid_orders']} paid "
            f"(refunds for quality / not as described / damaged, or rated 1-2); "
            f"smoothed problem rate {i['smoothed_rate']:.4f}",
        ]
        if i["status"] == "scored":
            pct = i["category_percentile"]
            peers = "no scored peer" if pct is None else f"above {pct:.1%} of the category"
            lines.append(f"PXI {i['pxi']:.2f} of 100, {peers}")
        else:
            lines.append(f"unscored: {i['status']} (too few paid orders for a PXI)")
        if self.traffic is not None:
            t = self.traffic
            lines.append(
                f"traffic weight {t['weight']:.3f}, "
                f"campaign {'eligible' if t['campaign_eligible'] else 'not eligible'}"
            )
        if i["at_best"]:
            lines.append("next tier: already at the best PXI knot")
        else:
            target = (
                f"next tier (on the smoothed problem rate): <= {i['target_rate']:.4g} "
                f"-> PXI {i['target_pxi']:.0f}"
            )
            if i["pxi_gain"] is not None:
                target += f" (+{i['pxi_gain']:.2f})"
            needed = i["raw_target"]
            target += f"; own problem rate needed over {i['paid_orders']} paid orders: " + (
                "out of reach at this volume" if needed is None else f"<= {needed:.4f}"
            )
            lines.append(target)
        return "\n".join(lines)


def _render(frame: pl.DataFrame) -> str:
    """A small all-string frame as an aligned plain-text table (Polars does the layout)."""
    with pl.Config(
        tbl_formatting="NOTHING",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=400,
        fmt_str_lengths=200,
        tbl_cell_alignment="LEFT",
    ):
        return str(frame)


def _num(expr: pl.Expr, decimals: int) -> pl.Expr:
    return pl.when(expr.is_null()).then(pl.lit("-")).otherwise(expr.round(decimals).cast(pl.String))


def _dimension_display(dimensions: pl.DataFrame) -> pl.DataFrame:
    return dimensions.select(
        dimension=pl.col("dimension"),
        score=_num(pl.col("score"), 3),
        points_lost=_num(pl.col("points_lost"), 3),
    )


def _indicator_display(rows: pl.DataFrame) -> pl.DataFrame:
    """Strings for the text table, built as expressions (no loop over rows)."""
    hours = pl.col("indicator").is_in([i for i, ind in INDICATOR_BY_ID.items() if ind.hours])
    numerator = (
        pl.when(hours)
        .then(pl.col("numerator").round(1).cast(pl.String) + pl.lit(" h"))
        .otherwise(pl.col("numerator").cast(pl.Int64).cast(pl.String))
    )
    value = (
        pl.when(pl.col("denominator") == 0)
        .then(pl.lit("- (no data)"))
        .otherwise(pl.format("{} = {}/{}", _num(pl.col("raw_value"), 4), numerator, "denominator"))
    )
    op = pl.when(pl.col("better") == "higher").then(pl.lit(">=")).otherwise(pl.lit("<="))
    target = (
        pl.when(~pl.col("assessed"))
        .then(pl.lit("not assessed"))
        .when(pl.col("at_best"))
        .then(pl.lit("at best knot"))
        .otherwise(
            pl.format(
                "{} {} -> {} (+{})",
                op,
                _num(pl.col("target_value"), 4),
                _num(pl.col("target_score"), 2),
                _num(pl.col("score_gain"), 4),
            )
        )
    )
    needed = (
        pl.when(pl.col("at_best").fill_null(True))
        .then(pl.lit(""))
        .otherwise(
            pl.when(pl.col("raw_target").is_null())
            .then(pl.lit("-"))
            .otherwise(pl.format("{} {}", op, _num(pl.col("raw_target"), 4)))
        )
    )
    return rows.select(
        indicator=pl.col("indicator"),
        dim=pl.col("dimension"),
        better=pl.col("better"),
        **{"value = num/den": value},
        smoothed=_num(pl.col("smoothed_value"), 4),
        score=_num(pl.col("indicator_score"), 3),
        lost=_num(pl.col("points_lost"), 3),
        **{"next tier (smoothed)": target, "own value needed": needed},
    )


def explain_shop(out: Path, shop_id: int, day: dt.date | None, rules: Rules) -> ShopExplanation:
    """Read the shop's published rows of `day` (default: the latest) and take them apart."""
    day = resolve_date(out, day)
    shop = scan_day(out, "shop_scores", day).filter(pl.col("shop_id") == shop_id).collect()
    if shop.height == 0:
        raise InputError(
            f"explain: shop {shop_id} has no score on {day} (no order, refund or session of it "
            f"in the window, or an unknown id)"
        )
    _check_rules(shop, rules, "shop_scores", day)
    indicators = (
        scan_day(out, "shop_indicators", day)
        .filter(pl.col("shop_id") == shop_id)
        .join(shop.lazy().select("shop_id", "main_category_id"), on="shop_id")
    )
    explained = (
        with_next_tier(indicators, rules)
        .with_columns(exempted_by=exempted_by(rules_window(rules, day)))
        .sort(["points_lost", "indicator"], descending=[True, False], nulls_last=True)
        .select(
            *INDICATOR_FIELDS, "target_value", "target_score", "at_best", "score_gain", "raw_target"
        )
        .collect()
    )
    lost = points_lost_by_dimension(indicators).collect()
    dimensions = (
        pl.DataFrame({"dimension": list(DIMENSIONS)})
        .with_columns(
            score=pl.col("dimension").replace_strict(
                {d: shop[f"{d}_score"].item() for d in DIMENSIONS}, return_dtype=pl.Float64
            )
        )
        .join(lost.select("dimension", "points_lost"), on="dimension", how="left")
    )
    traffic = scan_day(out, "shop_traffic_weights", day).filter(pl.col("shop_id") == shop_id)
    traffic_rows = traffic.drop("rules_version").collect()
    labels = (
        scan_day(out, "shop_labels", day)
        .filter(pl.col("shop_id") == shop_id)
        .select("label", "value", "display_text", "since")
        .sort("label")
        .collect()
    )
    return ShopExplanation(
        day=day,
        shop=_one_row(shop),
        traffic=_one_row(traffic_rows) if traffic_rows.height else None,
        dimensions=dimensions,
        indicators=explained,
        labels=labels,
    )


def explain_item(out: Path, item_id: int, day: dt.date | None, rules: Rules) -> ItemExplanation:
    """Read the item's published PXI row of `day` (default: the latest) with its next tier."""
    day = resolve_date(out, day, "item_scores")
    item = scan_day(out, "item_scores", day).filter(pl.col("item_id") == item_id).collect()
    if item.height == 0:
        raise InputError(
            f"explain: item {item_id} has no PXI row on {day} (no valid order of it in the "
            f"window, or an unknown id)"
        )
    _check_rules(item, rules, "item_scores", day)
    explained = item_next_tier(item.lazy(), rules).collect()
    traffic = (
        scan_day(out, "item_traffic_weights", day)
        .filter(pl.col("item_id") == item_id)
        .drop("rules_version")
        .collect()
    )
    return ItemExplanation(
        day=day,
        item=_one_row(explained),
        traffic=_one_row(traffic) if traffic.height else None,
    )


def to_json_text(explanation: ShopExplanation | ItemExplanation) -> str:
    """The explanation as indented JSON (dates as ISO strings)."""
    return json.dumps(explanation.to_json(), indent=2, ensure_ascii=False, default=str)
