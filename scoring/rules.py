"""Rules as data: the validated, typed form of a rules TOML file (SCORING.md section 11).

Parsing is strict on purpose. A rules file moves traffic between real shops, so a typo'd key, a
weight set that does not sum to 1 or a knot list that turns the wrong way must stop the run with a
message that says what is wrong and where, never silently fall back to a default.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import polars as pl

from scoring.catalog import (
    BONUS_ITEMS,
    DIMENSIONS,
    INDICATOR_BY_ID,
    INDICATORS,
    LABEL_BY_ID,
    RAW_LOGS,
)

Knots = tuple[tuple[float, float], ...]
WEIGHT_TOLERANCE = 1e-9


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file and the key."""


# Integers in a rules file stay within what the run can use: a window of more than a year is a
# typo, and nothing counts past int32 (window_days = 10**20 once ended in an OverflowError).
MAX_WINDOW_DAYS = 366
MAX_RULES_INTEGER = 2**31 - 1
MAX_CATEGORY_ID = 2**31 - 1  # category_id is int32 (SCORING.md 2.1)
CATEGORY_KEY = re.compile(r"0|[1-9][0-9]*")
# A traffic weight multiplies a shop's or item's search traffic: never negative (a negative
# knot once published negative weights), and more than 10x is a typo, not a policy.
TRAFFIC_WEIGHT_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class IndicatorRule:
    weight: float
    k: float
    knots: Knots


@dataclass(frozen=True)
class LabelRule:
    enter: float
    exit: float
    min_n: int


@dataclass(frozen=True)
class BonusRule:
    threshold: float
    points: float


@dataclass(frozen=True)
class GateRules:
    """Quality gates: conditions that hold publication (exit 3) unless forced.

    The defaults are the documented ones; a rules file may set them in a `[gates]` table, so a
    rules file written to the spec alone (which has no gates) still runs with sane gates.
    """

    trailing_days: int = 7  # rows of today's partition vs the median of this many days before
    min_rows_vs_median: float = 0.5  # hold when today's rows < this x trailing median
    max_quarantine_share: float = 0.01  # hold when today's rejected rows > this share of a log
    max_band_change_share: float = 0.20  # hold when more scored shops than this change band
    # per log, the fewest rows today's partition may have (an expectation of the feed's owner,
    # which holds a day with no history to compare it with); none by default
    min_rows: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    """The indicator rules and dimension weights that apply to one group of shops."""

    dimension_weights: Mapping[str, float]
    indicators: Mapping[str, IndicatorRule]


@dataclass(frozen=True)
class Rules:
    version: str
    timezone: str
    window_days: int
    min_orders: int
    min_item_orders: int
    k_item: float
    max_daily_change: float
    pxi_knots: Knots
    shop_weight_knots: Knots
    item_weight_knots: Knots
    default: RuleSet
    categories: Mapping[int, RuleSet]  # main category -> the full rule set with overrides applied
    bonus: Mapping[str, BonusRule]
    labels: Mapping[str, LabelRule]
    autonomous_min_score: float
    negotiate_first_min_score: float
    campaign_min_score: float
    campaign_min_pxi: float
    gates: GateRules = field(default_factory=GateRules)
    source: str = field(default="<rules>", compare=False)
    # SHA-256 of the file's bytes (set by whoever read the file): two files may carry the same
    # `version` and differ, and the manifest must tell them apart
    sha256: str | None = field(default=None, compare=False)

    def rule_set(self, category_id: int | None) -> RuleSet:
        """Rules for a shop of this main category (12.10: no main category -> the defaults)."""
        if category_id is None:
            return self.default
        return self.categories.get(category_id, self.default)

    def indicator_table(self) -> pl.DataFrame:
        """One row per (rule_category, indicator): dimension, weight, k, dimension weight.

        `rule_category` is null for the defaults and the category id for each category that has
        overrides; a shop joins on its main category, falling back to the null row.
        """
        rows = []
        for category, rule_set in [(None, self.default), *self.categories.items()]:
            for ind in INDICATORS:
                rule = rule_set.indicators[ind.id]
                rows.append(
                    {
                        "rule_category": category,
                        "indicator": ind.id,
                        "dimension": ind.dimension,
                        "weight": rule.weight,
                        "k": rule.k,
                        "dim_weight": rule_set.dimension_weights[ind.dimension],
                    }
                )
        return pl.DataFrame(
            rows,
            schema={
                "rule_category": pl.Int32,
                "indicator": pl.String,
                "dimension": pl.String,
                "weight": pl.Float64,
                "k": pl.Float64,
                "dim_weight": pl.Float64,
            },
        )


# --------------------------------------------------------------------------------------------
# parsing


def parse_rules(data: Mapping[str, Any], source: str = "<rules>") -> Rules:
    """Validate a parsed TOML mapping and build `Rules`; raise `RulesError` naming the key."""
    p = _Parser(source)
    p.keys(
        data,
        "",
        required={
            "version",
            "timezone",
            "window_days",
            "min_orders",
            "min_item_orders",
            "k_item",
            "max_daily_change",
            "pxi_knots",
            "shop_weight_knots",
            "item_weight_knots",
            "dimension_weights",
            "indicators",
            "bonus",
            "labels",
            "privileges",
        },
        optional={"categories", "gates"},
    )
    version = data["version"]
    if not isinstance(version, str) or not version:
        p.fail("version", "must be a non-empty string")
    tz = data["timezone"]
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        p.fail("timezone", f"unknown time zone {tz!r}")

    default = RuleSet(
        dimension_weights=p.dimension_weights(data["dimension_weights"], "dimension_weights"),
        indicators={
            ind_id: p.indicator(rule, f"indicators.{ind_id}")
            for ind_id, rule in p.exact_table(data["indicators"], "indicators", INDICATOR_BY_ID)
        },
    )
    p.dimension_sums(default, "indicators")

    categories: dict[int, RuleSet] = {}
    for key, override in p.table(data.get("categories", {}), "categories").items():
        # one spelling per id: "+1001" or "01001" would otherwise replace [categories.1001]
        if not CATEGORY_KEY.fullmatch(key) or int(key) > MAX_CATEGORY_ID:
            p.fail(
                f"categories.{key}",
                "category keys must be category ids in decimal (0 to 2147483647, no sign, "
                "no leading zeros)",
            )
        category = int(key)
        categories[category] = p.category_override(default, override, f"categories.{key}")

    privileges = p.table(data["privileges"], "privileges")
    p.keys(
        privileges,
        "privileges",
        required={
            "autonomous_min_score",
            "negotiate_first_min_score",
            "campaign_min_score",
            "campaign_min_pxi",
        },
    )
    if privileges["negotiate_first_min_score"] > privileges["autonomous_min_score"]:
        p.fail("privileges", "negotiate_first_min_score must not exceed autonomous_min_score")

    return Rules(
        version=version,
        timezone=str(tz),
        window_days=p.integer(
            data["window_days"], "window_days", minimum=1, maximum=MAX_WINDOW_DAYS
        ),
        min_orders=p.integer(data["min_orders"], "min_orders", minimum=0),
        min_item_orders=p.integer(data["min_item_orders"], "min_item_orders", minimum=0),
        k_item=p.number(data["k_item"], "k_item", minimum=0.0),
        max_daily_change=p.number(data["max_daily_change"], "max_daily_change", minimum=0.0),
        pxi_knots=p.knots(data["pxi_knots"], "pxi_knots", "lower", (0.0, 100.0)),
        shop_weight_knots=p.knots(
            data["shop_weight_knots"], "shop_weight_knots", "higher", TRAFFIC_WEIGHT_RANGE
        ),
        item_weight_knots=p.knots(
            data["item_weight_knots"], "item_weight_knots", "higher", TRAFFIC_WEIGHT_RANGE
        ),
        default=default,
        categories=categories,
        bonus={
            bonus_id: BonusRule(
                threshold=p.number(b.get("threshold"), f"bonus.{bonus_id}.threshold"),
                points=p.number(b.get("points"), f"bonus.{bonus_id}.points", minimum=0.0),
            )
            for bonus_id, b in p.exact_table(data["bonus"], "bonus", dict.fromkeys(BONUS_ITEMS))
        },
        labels={
            label_id: p.label(rule, f"labels.{label_id}", LABEL_BY_ID[label_id].better)
            for label_id, rule in p.exact_table(data["labels"], "labels", LABEL_BY_ID)
        },
        autonomous_min_score=p.number(
            privileges["autonomous_min_score"], "privileges.autonomous_min_score"
        ),
        negotiate_first_min_score=p.number(
            privileges["negotiate_first_min_score"], "privileges.negotiate_first_min_score"
        ),
        campaign_min_score=p.number(
            privileges["campaign_min_score"], "privileges.campaign_min_score"
        ),
        campaign_min_pxi=p.number(privileges["campaign_min_pxi"], "privileges.campaign_min_pxi"),
        gates=p.gates(data.get("gates", {})),
        source=source,
    )


class _Parser:
    """Small validators that all report `<source>: <key path>: <problem>`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> None:
        raise RulesError(f"rules file {self.source}: {where or '<top level>'}: {problem}")

    def table(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(where, "must be a table")
        return value

    def keys(
        self,
        value: Mapping[str, Any],
        where: str,
        required: set[str],
        optional: set[str] = frozenset(),
    ) -> None:
        missing = sorted(required - value.keys())
        unknown = sorted(value.keys() - required - optional)
        if missing:
            self.fail(where, f"missing key(s) {', '.join(missing)}")
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(map(str, unknown))}")

    def exact_table(
        self, value: Any, where: str, known: Mapping[str, Any]
    ) -> list[tuple[str, Any]]:
        """A table whose keys must be exactly the known ids, in the catalogue's order."""
        table = self.table(value, where)
        unknown = sorted(set(table) - set(known))
        if unknown:
            self.fail(where, f"unknown id(s) {', '.join(unknown)}; known: {', '.join(known)}")
        missing = [k for k in known if k not in table]
        if missing:
            self.fail(where, f"missing id(s) {', '.join(missing)}")
        return [(k, self.table(table[k], f"{where}.{k}")) for k in known]

    def number(self, value: Any, where: str, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            self.fail(where, f"must be finite, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(where, f"must be >= {minimum}, got {value!r}")
        return float(value)

    def integer(
        self, value: Any, where: str, minimum: int, maximum: int = MAX_RULES_INTEGER
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be an integer, got {value!r}")
        if value < minimum:
            self.fail(where, f"must be >= {minimum}, got {value!r}")
        if value > maximum:
            self.fail(where, f"must be <= {maximum}, got {value!r}")
        return int(value)

    def knots(
        self,
        value: Any,
        where: str,
        better: str,
        score_range: tuple[float, float] | None = None,
    ) -> Knots:
        """Knots sorted by value (12.12); values distinct; scores monotone toward 'better'."""
        if not isinstance(value, list) or not value:
            self.fail(where, "must be a non-empty list of [value, score] pairs")
        pairs = []
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2:
                self.fail(f"{where}[{i}]", f"must be a [value, score] pair, got {pair!r}")
            pairs.append(
                (
                    self.number(pair[0], f"{where}[{i}] value"),
                    self.number(pair[1], f"{where}[{i}] score"),
                )
            )
        pairs.sort(key=lambda p: p[0])
        for (x0, y0), (x1, y1) in pairwise(pairs):
            if x0 == x1:
                self.fail(where, f"two knots at value {x0}")
            turns_wrong = y1 < y0 if better == "higher" else y1 > y0
            if turns_wrong:
                self.fail(
                    where,
                    f"knots not monotone: score goes from {y0} at {x0} to {y1} at {x1}, "
                    f"but {'higher' if better == 'higher' else 'lower'} values are better",
                )
        if score_range is not None:
            lo, hi = score_range
            bad = [y for _, y in pairs if not lo <= y <= hi]
            if bad:
                self.fail(where, f"scores must lie in [{lo}, {hi}], got {bad}")
        return tuple(pairs)

    def indicator(self, value: Mapping[str, Any], where: str, partial: bool = False) -> Any:
        fields = {"weight", "k", "knots"}
        self.keys(value, where, required=set() if partial else fields, optional=fields)
        ind_id = where.rsplit(".", 1)[1]
        parsed = {}
        if "weight" in value:
            parsed["weight"] = self.number(value["weight"], f"{where}.weight", minimum=0.0)
        if "k" in value:
            parsed["k"] = self.number(value["k"], f"{where}.k", minimum=0.0)
        if "knots" in value:
            parsed["knots"] = self.knots(
                value["knots"], f"{where}.knots", INDICATOR_BY_ID[ind_id].better, (3.0, 5.0)
            )
        return parsed if partial else IndicatorRule(**parsed)

    def dimension_weights(self, value: Any, where: str, partial: bool = False) -> dict[str, float]:
        table = self.table(value, where)
        self.keys(
            table, where, required=set() if partial else set(DIMENSIONS), optional=set(DIMENSIONS)
        )
        weights = {d: self.number(table[d], f"{where}.{d}", minimum=0.0) for d in table}
        return weights

    def weights_sum_to_one(self, weights: Mapping[str, float], where: str) -> None:
        total = sum(weights.values())
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            self.fail(where, f"weights must sum to 1, got {total:.12g}")

    def dimension_sums(self, rule_set: RuleSet, where: str) -> None:
        self.weights_sum_to_one(rule_set.dimension_weights, f"{where} dimension_weights")
        for dim in DIMENSIONS:
            weights = {
                i: r.weight
                for i, r in rule_set.indicators.items()
                if INDICATOR_BY_ID[i].dimension == dim
            }
            self.weights_sum_to_one(weights, f"{where} ({dim} indicator weights)")

    def category_override(self, default: RuleSet, value: Any, where: str) -> RuleSet:
        """12.10: an override replaces only the keys it names."""
        table = self.table(value, where)
        self.keys(table, where, required=set(), optional={"indicators", "dimension_weights"})
        dim_weights = dict(default.dimension_weights)
        if "dimension_weights" in table:
            dim_weights.update(
                self.dimension_weights(
                    table["dimension_weights"], f"{where}.dimension_weights", True
                )
            )
        indicators = dict(default.indicators)
        overrides = self.table(table.get("indicators", {}), f"{where}.indicators")
        for ind_id, ind_value in overrides.items():
            if ind_id not in INDICATOR_BY_ID:
                self.fail(f"{where}.indicators", f"unknown indicator {ind_id!r}")
            parsed = self.indicator(
                self.table(ind_value, f"{where}.indicators.{ind_id}"),
                f"{where}.indicators.{ind_id}",
                partial=True,
            )
            base = indicators[ind_id]
            indicators[ind_id] = IndicatorRule(
                weight=parsed.get("weight", base.weight),
                k=parsed.get("k", base.k),
                knots=parsed.get("knots", base.knots),
            )
        rule_set = RuleSet(dimension_weights=dim_weights, indicators=indicators)
        self.dimension_sums(rule_set, where)
        return rule_set

    def gates(self, value: Any) -> GateRules:
        table = self.table(value, "gates")
        defaults = GateRules()
        self.keys(table, "gates", required=set(), optional=set(defaults.__dataclass_fields__))
        shares = ("min_rows_vs_median", "max_quarantine_share", "max_band_change_share")
        for key in shares:
            if key in table and not 0.0 <= self.number(table[key], f"gates.{key}") <= 1.0:
                self.fail(f"gates.{key}", f"must lie in [0, 1], got {table[key]!r}")
        minimums = self.table(table.get("min_rows", {}), "gates.min_rows")
        unknown = sorted(set(minimums) - set(RAW_LOGS))
        if unknown:
            self.fail(f"gates.min_rows.{unknown[0]}", f"not a log (logs: {', '.join(RAW_LOGS)})")
        return GateRules(
            trailing_days=self.integer(
                table.get("trailing_days", defaults.trailing_days), "gates.trailing_days", 1
            ),
            **{k: float(table.get(k, getattr(defaults, k))) for k in shares},
            min_rows={
                log: self.integer(n, f"gates.min_rows.{log}", minimum=0)
                for log, n in minimums.items()
            },
        )

    def label(self, value: Mapping[str, Any], where: str, better: str) -> LabelRule:
        self.keys(value, where, required={"enter", "exit", "min_n"})
        enter = self.number(value["enter"], f"{where}.enter")
        exit_ = self.number(value["exit"], f"{where}.exit")
        if (better == "higher" and exit_ > enter) or (better == "lower" and exit_ < enter):
            self.fail(
                where,
                f"exit {exit_} is on the wrong side of enter {enter} "
                f"({better} values are better, so a label must be easier to keep than to gain)",
            )
        return LabelRule(enter, exit_, self.integer(value["min_n"], f"{where}.min_n", minimum=0))
