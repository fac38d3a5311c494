"""Rules as data: what a rules TOML file may hold (SCORING.md section 11), and its typed form.

Parsing is strict on purpose. A rules file moves traffic between real shops, so a typo'd key, a
weight set that does not sum to 1 or a knot list that turns the wrong way must stop the run with a
message that says what is wrong and where, never silently fall back to a default.

The file is defined once, by the pydantic models below (`RulesFile` and its tables): they
validate a parsed file, reporting **every** problem at once with its key path (`expscore rules
check`), and they generate the JSON Schema that ships as docs/rules.schema.json for editors
(`rules_json_schema`). pydantic (v2, already installed with typer) does both from one
definition; a hand-written validator plus a hand-written schema would be two definitions that
drift. What a schema cannot say (weights summing to 1, knots monotone in the indicator's
direction, a label's exit on the easy side of its enter, a category's merged weights) is checked
by validators on the smallest table that holds the numbers, so a problem in one table never hides
one in another. The validated file becomes `Rules`, the frozen dataclasses the scoring code uses
(category overrides applied). No I/O here: reading the file and writing the schema are the
pipeline's.

Adding a table is one model and one field of `RulesFile` (as `[[exemptions]]`, SCORING.md 13.3,
was added: `exemptions: list[Exemption] = []`, with its checks as validators on `Exemption` and
the list), one field of `Rules`, and the schema regenerated (`make schema`); the error
reporting, `rules check` and the schema follow by themselves. A check that needs another table
(a local `ship_by` read in the rules' `timezone`) runs in `parse_rules`, after the tables.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

import polars as pl
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from scoring.catalog import (
    BONUS_ITEMS,
    DIMENSIONS,
    EXCLUDABLE_INDICATORS,
    INDICATOR_BY_ID,
    INDICATORS,
    LABEL_BY_ID,
    LABELS,
    RAW_LOGS,
    Direction,
)

Knots = tuple[tuple[float, float], ...]
WEIGHT_TOLERANCE = 1e-9

# Integers in a rules file stay within what the run can use: a window of more than a year is a
# typo, and nothing counts past int32 (window_days = 10**20 once ended in an OverflowError).
MAX_WINDOW_DAYS = 366
MAX_RULES_INTEGER = 2**31 - 1
MAX_CATEGORY_ID = 2**31 - 1  # category_id is int32 (SCORING.md 2.1)
CATEGORY_KEY = re.compile(r"0|[1-9][0-9]*")
EXEMPTION_NAME = re.compile(r"[a-z0-9_]+")  # SCORING.md 13.3
# A traffic weight multiplies a shop's or item's search traffic: never negative (a negative
# knot once published negative weights), and more than 10x is a typo, not a policy.
TRAFFIC_WEIGHT_RANGE = (0.0, 10.0)
INDICATOR_SCORE_RANGE = (3.0, 5.0)
PXI_RANGE = (0.0, 100.0)


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rules file: where (a dotted key path, `[i]` for a list item) and
    what."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path or '<top level>'}: {self.problem}"


class RulesError(ValueError):
    """A rules file that cannot be used: every problem found, each naming its key path.

    `str()` is one line (the run's error line); `lines()` gives one line per problem (`expscore
    rules check`).
    """

    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source, self.problems = source, problems
        super().__init__(self._one_line())

    def lines(self) -> list[str]:
        return [f"rules file {self.source}: {p}" for p in self.problems]

    def _one_line(self) -> str:
        if len(self.problems) == 1:
            return self.lines()[0]
        listed = "; ".join(str(p) for p in self.problems)
        return f"rules file {self.source}: {len(self.problems)} problems: {listed}"


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
class ExemptionRule:
    """One exemption (SCORING.md 13.3), as the scoring code uses it.

    A row matches when the local date (in `Rules.timezone`) of its time (an order's `paid_at`, a
    refund's `requested_at`, a session's `started_at`) is in `[paid_from, paid_to]`, both
    inclusive; an order must also have its `ship_to_region` in `regions` when that is not empty,
    and refunds and sessions match only exemptions with no `regions` (they carry no region).
    `ship_by` is an instant (UTC) however the file wrote it. `exclude_from` keeps the file's order;
    each id counts one kind of row (`scoring.catalog.Indicator.source`), so an order-based id
    removes orders only, a session-based id sessions only.
    """

    name: str
    paid_from: dt.date
    paid_to: dt.date
    regions: tuple[str, ...] = ()  # empty: every region
    ship_by: dt.datetime | None = None  # UTC-aware; None: the deadline is unchanged
    exclude_from: tuple[str, ...] = ()  # indicator ids, of EXCLUDABLE_INDICATORS

    def as_data(self) -> dict[str, Any]:
        """The exemption as JSON values (dates and the UTC ship_by as ISO text): what the window
        state records it was built with, what the manifest lists and what-if compares."""
        return {
            "name": self.name,
            "paid_from": self.paid_from.isoformat(),
            "paid_to": self.paid_to.isoformat(),
            "regions": list(self.regions),
            "ship_by": None if self.ship_by is None else self.ship_by.isoformat(),
            "exclude_from": list(self.exclude_from),
        }


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
    exemptions: tuple[ExemptionRule, ...] = ()  # in the file's order; none by default (13.3)
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
# the file: one definition, for the validation and for the JSON Schema


def _problem(text: str) -> PydanticCustomError:
    """A validator's problem, reported with its key path like pydantic's own errors."""
    return PydanticCustomError("rules", "{problem}", {"problem": text})


class _Table(BaseModel):
    """A TOML table: known keys only (a typo'd key is an error, never a key ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# An integer or a float, finite (TOML has inf and nan), never a boolean or a string.
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
NonNegative = Annotated[Number, Field(ge=0.0)]
Share = Annotated[Number, Field(ge=0.0, le=1.0)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_RULES_INTEGER)]
Knot = tuple[Number, Number]


def _knots_check(
    better: Direction, score_range: tuple[float, float]
) -> Callable[[list[tuple[float, float]]], Knots]:
    """Knots sorted by value (12.12); values distinct; scores monotone toward `better` and
    inside `score_range`."""
    low, high = score_range

    def check(pairs: list[tuple[float, float]]) -> Knots:
        ordered = sorted(pairs, key=lambda pair: pair[0])
        for (x0, y0), (x1, y1) in pairwise(ordered):
            if x0 == x1:
                raise _problem(f"two knots at value {x0}")
            if y1 < y0 if better == "higher" else y1 > y0:
                raise _problem(
                    f"knots not monotone: score goes from {y0} at {x0} to {y1} at {x1}, "
                    f"but {better} values are better"
                )
        bad = [y for _, y in ordered if not low <= y <= high]
        if bad:
            raise _problem(f"scores must lie in [{low}, {high}], got {bad}")
        return tuple(ordered)

    return check


def _knots(better: Direction, score_range: tuple[float, float], what: str) -> Any:
    low, high = score_range
    rises = "rise" if better == "higher" else "fall"
    return Annotated[
        list[Knot],
        Field(
            min_length=1,
            description=f"{what}: [value, score] pairs in any order (sorted by value), values "
            f"distinct, scores in [{low}, {high}] that {rises} as the value rises ({better} "
            "values are better); linear between knots, flat beyond the ends",
        ),
        AfterValidator(_knots_check(better, score_range)),
    ]


IndicatorKnotsHigher = _knots("higher", INDICATOR_SCORE_RANGE, "indicator score knots")
IndicatorKnotsLower = _knots("lower", INDICATOR_SCORE_RANGE, "indicator score knots")
PxiKnots = _knots("lower", PXI_RANGE, "PXI by smoothed problem rate")
WeightKnots = _knots("higher", TRAFFIC_WEIGHT_RANGE, "traffic weight by score")

WEIGHT_HELP = "weight within its dimension; the weights of a dimension's indicators sum to 1"
K_HELP = "shrinkage toward the main category's prior, in orders (SCORING.md 5)"


class HigherIsBetterIndicator(_Table):
    """An indicator where higher values are better: its knots' scores rise with the value."""

    weight: NonNegative = Field(description=WEIGHT_HELP)
    k: NonNegative = Field(description=K_HELP)
    knots: IndicatorKnotsHigher


class LowerIsBetterIndicator(_Table):
    """An indicator where lower values are better: its knots' scores fall as the value rises."""

    weight: NonNegative = Field(description=WEIGHT_HELP)
    k: NonNegative = Field(description=K_HELP)
    knots: IndicatorKnotsLower


class HigherIsBetterOverride(_Table):
    """A category's override of a higher-is-better indicator: only the keys it names (12.10)."""

    weight: NonNegative | None = Field(default=None, description=WEIGHT_HELP)
    k: NonNegative | None = Field(default=None, description=K_HELP)
    knots: IndicatorKnotsHigher | None = None


class LowerIsBetterOverride(_Table):
    """A category's override of a lower-is-better indicator: only the keys it names (12.10)."""

    weight: NonNegative | None = Field(default=None, description=WEIGHT_HELP)
    k: NonNegative | None = Field(default=None, description=K_HELP)
    knots: IndicatorKnotsLower | None = None


def _sum_problem(weights: Mapping[str, float], what: str) -> str | None:
    total = math.fsum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"{what} must sum to 1, got {total:.12g}"
    return None


def _indicator_weight_problems(weights: Mapping[str, float]) -> list[str]:
    """Each dimension whose indicators' weights do not sum to 1."""
    problems = (
        _sum_problem(
            {i: w for i, w in weights.items() if INDICATOR_BY_ID[i].dimension == dim},
            f"{dim} indicator weights",
        )
        for dim in DIMENSIONS
    )
    return [p for p in problems if p]


class _DimensionWeightsSum(_Table):
    @model_validator(mode="after")
    def _sum_to_one(self) -> _DimensionWeightsSum:
        problem = _sum_problem(dict(self), "weights")
        if problem:
            raise _problem(problem)
        return self


class _IndicatorWeightsSum(_Table):
    @model_validator(mode="after")
    def _sum_to_one_per_dimension(self) -> _IndicatorWeightsSum:
        problems = _indicator_weight_problems({i: rule.weight for i, rule in self})
        if problems:
            raise _problem("; ".join(problems))
        return self


def _indicator_help(ind_id: str) -> str:
    ind = INDICATOR_BY_ID[ind_id]
    return f"{ind.dimension} dimension, {ind.better} is better (SCORING.md 4)"


DimensionWeights = create_model(
    "DimensionWeights",
    __base__=_DimensionWeightsSum,
    __doc__="Weights of the dimensions in the shop score; they sum to 1.",
    **{dim: (NonNegative, ...) for dim in DIMENSIONS},
)
DimensionWeightsOverride = create_model(
    "DimensionWeightsOverride",
    __base__=_Table,
    __doc__="A category's dimension weights: only those named change; the merged weights sum to 1.",
    **{dim: (NonNegative | None, None) for dim in DIMENSIONS},
)
Indicators = create_model(
    "Indicators",
    __base__=_IndicatorWeightsSum,
    __doc__="Every indicator of SCORING.md 4, each once.",
    **{
        ind.id: (
            HigherIsBetterIndicator if ind.better == "higher" else LowerIsBetterIndicator,
            Field(description=_indicator_help(ind.id)),
        )
        for ind in INDICATORS
    },
)
IndicatorOverrides = create_model(
    "IndicatorOverrides",
    __base__=_Table,
    __doc__="A category's indicator overrides: only the indicators and keys named change.",
    **{
        ind.id: (
            (HigherIsBetterOverride if ind.better == "higher" else LowerIsBetterOverride) | None,
            Field(default=None, description=_indicator_help(ind.id)),
        )
        for ind in INDICATORS
    },
)


class BonusItem(_Table):
    """A bonus: `points` for a shop whose share reaches `threshold` (SCORING.md 6)."""

    threshold: Number
    points: NonNegative


Bonus = create_model(
    "Bonus",
    __base__=_Table,
    __doc__="The bonus items of SCORING.md 6, each once.",
    **{item: (BonusItem, ...) for item in BONUS_ITEMS},
)


class _Label(_Table):
    better: ClassVar[Direction]
    enter: Number = Field(description="the value at which a shop gains the label")
    exit: Number = Field(description="the value at which a shop holding the label loses it")
    min_n: Count = Field(description="the fewest observations the value needs")

    @model_validator(mode="after")
    def _exit_on_the_easy_side(self) -> _Label:
        if self.exit > self.enter if self.better == "higher" else self.exit < self.enter:
            raise _problem(
                f"exit {self.exit} is on the wrong side of enter {self.enter} ({self.better} "
                "values are better, so a label must be easier to keep than to gain)"
            )
        return self


class HigherIsBetterLabel(_Label):
    """A label for a high value (SCORING.md 8): exit <= enter (hysteresis)."""

    better: ClassVar[Direction] = "higher"


class LowerIsBetterLabel(_Label):
    """A label for a low value (SCORING.md 8, hours or seconds): exit >= enter (hysteresis)."""

    better: ClassVar[Direction] = "lower"


Labels = create_model(
    "Labels",
    __base__=_Table,
    __doc__="The labels of SCORING.md 8, each once.",
    **{
        label.id: (HigherIsBetterLabel if label.better == "higher" else LowerIsBetterLabel, ...)
        for label in LABELS
    },
)


class Privileges(_Table):
    """Score thresholds of the refund-only tiers and campaign eligibility (SCORING.md 9)."""

    autonomous_min_score: Number
    negotiate_first_min_score: Number
    campaign_min_score: Number
    campaign_min_pxi: Number

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Privileges:
        if self.negotiate_first_min_score > self.autonomous_min_score:
            raise _problem("negotiate_first_min_score must not exceed autonomous_min_score")
        return self


_GATE_DEFAULTS = GateRules()
LogName = Literal[RAW_LOGS]  # type: ignore[valid-type]


class Gates(_Table):
    """Quality gates (not in SCORING.md): a run that trips one is held, exit 3, unless --force."""

    trailing_days: Annotated[StrictInt, Field(ge=1, le=MAX_RULES_INTEGER)] = Field(
        default=_GATE_DEFAULTS.trailing_days,
        description="compare today's partition with the median of this many days before",
    )
    min_rows_vs_median: Share = Field(
        default=_GATE_DEFAULTS.min_rows_vs_median,
        description="hold when a log's rows today are below this share of that median",
    )
    max_quarantine_share: Share = Field(
        default=_GATE_DEFAULTS.max_quarantine_share,
        description="hold when more than this share of a log's rows today are quarantined",
    )
    max_band_change_share: Share = Field(
        default=_GATE_DEFAULTS.max_band_change_share,
        description="hold when more than this share of scored shops changed band since D-1",
    )
    min_rows: dict[LogName, Count] = Field(
        default_factory=dict, description="per log, the fewest rows today's partition may have"
    )


def _time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _problem(f"unknown time zone {name!r}") from None
    return name


def _category_key(key: str) -> str:
    # one spelling per id: "+1001" or "01001" would otherwise replace [categories.1001]
    if not CATEGORY_KEY.fullmatch(key) or int(key) > MAX_CATEGORY_ID:
        raise _problem(
            "category keys must be category ids in decimal (0 to 2147483647, no sign, "
            "no leading zeros)"
        )
    return key


CategoryKey = Annotated[
    str,
    AfterValidator(_category_key),
    WithJsonSchema({"type": "string", "pattern": f"^({CATEGORY_KEY.pattern})$"}),
]


class CategoryOverride(_Table):
    """Rules for shops of one main category: the keys named replace the defaults (12.10)."""

    dimension_weights: DimensionWeightsOverride | None = None  # type: ignore[valid-type]
    indicators: IndicatorOverrides | None = None  # type: ignore[valid-type]


def _exemption_name(name: str) -> str:
    if not EXEMPTION_NAME.fullmatch(name):
        raise _problem(f"names are lower-case letters, digits and _ only, got {name!r}")
    return name


ExemptionName = Annotated[
    StrictStr,
    AfterValidator(_exemption_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^({EXEMPTION_NAME.pattern})$",
            "description": "unique among the exemptions; lower-case letters, digits and _",
        }
    ),
]


def _excludable(indicator: str) -> str:
    if indicator in EXCLUDABLE_INDICATORS:
        return indicator
    if indicator in INDICATOR_BY_ID:  # over more than one kind of row: platform_help_rate
        raise _problem(
            f"{indicator} cannot be excluded: it mixes help refunds and escalated sessions over "
            "|V| (valid orders), so no one kind of row can leave it; SCORING.md 13.3 does not "
            "allow it"
        )
    raise _problem(
        f"unknown indicator {indicator!r}; exemptions may exclude "
        f"{', '.join(EXCLUDABLE_INDICATORS)}"
    )


ExcludableIndicator = Annotated[
    StrictStr,
    AfterValidator(_excludable),
    WithJsonSchema({"type": "string", "enum": list(EXCLUDABLE_INDICATORS)}),
]


def _distinct(items: list[str]) -> list[str]:
    """A list that names each thing once: a repeat is a slip (another id was meant), not a
    stronger exclusion."""
    twice = [item for item, n in Counter(items).items() if n > 1]
    if twice:
        raise _problem(f"lists {', '.join(twice)} more than once")
    return items


Region = Annotated[StrictStr, Field(min_length=1)]
# A TOML local date (tomllib gives a date): never a string, a number or a date-time.
LocalDate = Annotated[dt.date, Strict()]
# A TOML offset or local date-time (tomllib gives a datetime, aware or naive); a local one is
# read in the rules' timezone when `Rules` is built (`_ship_by_utc`). Editors see TOML dates as
# RFC 3339 text, which JSON Schema's "date-time" format would refuse without an offset.
DateTime = Annotated[
    dt.datetime,
    Strict(),
    WithJsonSchema(
        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"}
    ),
]


class Exemption(_Table):
    """Rows the merchant could not control, taken out of named indicators (SCORING.md 13.3).

    Orders paid, refunds requested and sessions started on the local dates `paid_from` to
    `paid_to` (inclusive, in the rules' `timezone`) match; with `regions`, only orders shipped to
    one of them. A matching order's pickup deadline is at least `ship_by`, and matching rows leave
    the indicators of `exclude_from`. `ship_by` is a TOML date-time: one with an offset is that
    instant; a local one (no offset) is read in the rules' `timezone`, like the dates, and one
    that the clocks skip or repeat there is an error (write the offset). An exemption must change
    something, so it has `ship_by` or a non-empty `exclude_from`.
    """

    name: ExemptionName
    paid_from: LocalDate = Field(description="first local date (in timezone) of the exemption")
    paid_to: LocalDate = Field(description="last local date (in timezone), inclusive")
    regions: Annotated[list[Region], AfterValidator(_distinct)] = Field(
        default_factory=list,
        description="ship_to_region values of the orders that match; empty or absent: every "
        "region (refunds and sessions carry no region: they match only then)",
        json_schema_extra={"uniqueItems": True},
    )
    ship_by: DateTime | None = Field(
        default=None,
        description="a later pickup deadline for matching orders: a TOML date-time, with an "
        "offset (2026-02-26T00:00:00+08:00) that instant, without one read in the rules' timezone",
    )
    exclude_from: Annotated[list[ExcludableIndicator], AfterValidator(_distinct)] = Field(
        default_factory=list,
        description="indicators that matching rows leave (numerator and denominator)",
        json_schema_extra={"uniqueItems": True},
    )

    @model_validator(mode="after")
    def _changes_something(self) -> Exemption:
        problems = []
        if self.paid_from > self.paid_to:
            problems.append(f"paid_from {self.paid_from} is after paid_to {self.paid_to}")
        if self.ship_by is None and not self.exclude_from:
            problems.append(
                "has neither ship_by nor a non-empty exclude_from, so it would change nothing"
            )
        if problems:
            raise _problem("; ".join(problems))
        return self


def _unique_names(exemptions: list[Exemption]) -> list[Exemption]:
    """One name, one exemption: the manifest counts each exemption's rows by its name."""
    at: dict[str, list[int]] = {}
    for i, exemption in enumerate(exemptions):
        at.setdefault(exemption.name, []).append(i)
    twice = [
        f"name {name!r} is used by {' and '.join(f'exemptions[{i}]' for i in places)}"
        for name, places in at.items()
        if len(places) > 1
    ]
    if twice:
        raise _problem("; ".join(twice) + " (names must be unique)")
    return exemptions


class RulesFile(_Table):
    """An expscore rules file (SCORING.md 11): the weights, knots and thresholds of the scores."""

    model_config = ConfigDict(title="expscore rules file")

    version: Annotated[StrictStr, Field(min_length=1)] = Field(
        description="the rules' version, published in every row (rules_version)"
    )
    timezone: Annotated[StrictStr, AfterValidator(_time_zone)] = Field(
        description="the business time zone (IANA name), e.g. Asia/Shanghai"
    )
    window_days: Annotated[StrictInt, Field(ge=1, le=MAX_WINDOW_DAYS)] = Field(
        description="days of the window the scores count (SCORING.md 3)"
    )
    min_orders: Count = Field(description="valid orders a shop needs to be scored")
    min_item_orders: Count = Field(description="paid orders an item needs for a PXI")
    k_item: NonNegative = Field(description="shrinkage of an item's problem rate, in orders")
    max_daily_change: NonNegative = Field(
        description="the most a traffic weight may move in a day, as a share (the daily clamp)"
    )
    pxi_knots: PxiKnots
    shop_weight_knots: WeightKnots
    item_weight_knots: WeightKnots
    dimension_weights: DimensionWeights  # type: ignore[valid-type]
    indicators: Indicators  # type: ignore[valid-type]
    bonus: Bonus  # type: ignore[valid-type]
    labels: Labels  # type: ignore[valid-type]
    privileges: Privileges
    categories: dict[CategoryKey, CategoryOverride] = Field(
        default_factory=dict,
        description="overrides by main category id",
        json_schema_extra={"additionalProperties": False},
    )
    gates: Gates = Field(default_factory=Gates)
    exemptions: Annotated[list[Exemption], AfterValidator(_unique_names)] = Field(
        default_factory=list,
        description="[[exemptions]]: rows taken out of named indicators (SCORING.md 13.3); none "
        "when absent",
    )


# Tables whose keys are the catalogue's ids: an unknown key there is an unknown id.
_KNOWN_IDS: dict[str, tuple[str, ...]] = {
    "indicators": tuple(INDICATOR_BY_ID),
    "labels": tuple(LABEL_BY_ID),
    "bonus": BONUS_ITEMS,
    "dimension_weights": DIMENSIONS,
}


def _path(loc: tuple[int | str, ...]) -> str:
    """`indicators.pickup_on_time_rate.knots[2][0]`: the key path of a pydantic location."""
    path = ""
    for part in loc:
        if part == "[key]":  # the key itself is wrong: the path ends at it
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: Any) -> str:
    """pydantic's error in the words of this file's other messages."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    in_knots = any(isinstance(part, str) and part.endswith("knots") for part in error["loc"])
    if kind == "rules":
        return str(ctx["problem"])
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, got {value!r}"
    if kind == "finite_number":
        return f"must be finite, got {value!r}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}, got {value!r}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}, got {value!r}"
    if kind in ("string_type", "string_too_short"):
        return f"must be a non-empty string, got {value!r}"
    if kind == "date_type":
        return f"must be a TOML local date like 2026-02-10, got {value!r}"
    if kind == "datetime_type":
        return f"must be a TOML date-time like 2026-02-26T00:00:00+08:00, got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table, got {value!r}"
    if in_knots and isinstance(error["loc"][-1], int):
        return f"must be a [value, score] pair, got {value!r}"
    if in_knots:
        return "must be a non-empty list of [value, score] pairs"
    if kind == "list_type":
        return f"must be a list, got {value!r}"
    if kind == "literal_error" and error["loc"][-1] == "[key]":
        return f"unknown key {value!r} (known: {ctx['expected']})"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {value!r}"
    return str(error["msg"])


def _grouped(path: str, kind: str, keys: list[str]) -> RuleProblem:
    """Missing or unknown keys of one table, in one problem."""
    table = path.rsplit(".", 1)[-1]
    if kind == "missing":
        what = "id(s)" if table in _KNOWN_IDS else "key(s)"
        return RuleProblem(path, f"missing {what} {', '.join(keys)}")
    if table in _KNOWN_IDS:
        known = ", ".join(_KNOWN_IDS[table])
        return RuleProblem(path, f"unknown id(s) {', '.join(sorted(keys))}; known: {known}")
    return RuleProblem(path, f"unknown key(s) {', '.join(sorted(keys))}")


def _problems(exc: ValidationError) -> list[RuleProblem]:
    """Every problem of a failed validation, in the file's order; the missing and the unknown
    keys of one table are gathered in one problem each."""
    order: list[RuleProblem | tuple[str, str]] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] in ("missing", "extra_forbidden"):
            group = (_path(loc[:-1]), error["type"])
            if group not in grouped:
                grouped[group] = []
                order.append(group)
            grouped[group].append(str(loc[-1]))
        else:
            order.append(RuleProblem(_path(loc), _message(error)))
    return [
        item if isinstance(item, RuleProblem) else _grouped(*item, grouped[item]) for item in order
    ]


def _rule_set(dimension_weights: Mapping[str, float], indicators: Any) -> RuleSet:
    return RuleSet(
        dimension_weights=dict(dimension_weights),
        indicators={
            ind_id: IndicatorRule(rule.weight, rule.k, rule.knots) for ind_id, rule in indicators
        },
    )


def _with_override(default: RuleSet, override: CategoryOverride) -> RuleSet:
    """12.10: an override replaces only the keys it names."""
    weights = dict(default.dimension_weights)
    if override.dimension_weights is not None:
        weights.update({d: w for d, w in override.dimension_weights if w is not None})
    indicators = dict(default.indicators)
    for ind_id, changed in override.indicators or ():
        if changed is None:
            continue
        base = indicators[ind_id]
        indicators[ind_id] = IndicatorRule(
            weight=base.weight if changed.weight is None else changed.weight,
            k=base.k if changed.k is None else changed.k,
            knots=base.knots if changed.knots is None else changed.knots,
        )
    return RuleSet(dimension_weights=weights, indicators=indicators)


def _ship_by_utc(ship_by: dt.datetime, time_zone: str) -> dt.datetime:
    """`ship_by` as a UTC instant. A local date-time (no offset) is read in the rules' time zone,
    the zone of `paid_from` and `paid_to` and of every local date in the spec (SCORING.md 1), so
    `2026-02-26T00:00:00` means midnight in Asia/Shanghai; a time the clocks skip or repeat there
    has no one reading and is refused (ValueError, its message the problem)."""
    if ship_by.utcoffset() is None:
        zone = zoneinfo.ZoneInfo(time_zone)
        earlier, later = ship_by.replace(tzinfo=zone, fold=0), ship_by.replace(tzinfo=zone, fold=1)
        if earlier.utcoffset() != later.utcoffset():
            back = earlier.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
            what = "happens twice" if back == ship_by else "does not exist"
            raise ValueError(
                f"{ship_by.isoformat()} {what} in {time_zone} (a clock change): write it with "
                "an offset"
            )
        ship_by = earlier
    try:
        return ship_by.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{ship_by.isoformat()} is out of range") from None


def _exemption_rules(
    file: RulesFile,
) -> tuple[tuple[ExemptionRule, ...], list[RuleProblem]]:
    """The typed exemptions, and the problems only the rules' time zone shows (a local
    `ship_by` that does not exist there or happens twice)."""
    exemptions: list[ExemptionRule] = []
    problems: list[RuleProblem] = []
    for i, exemption in enumerate(file.exemptions):
        ship_by = exemption.ship_by
        if ship_by is not None:
            try:
                ship_by = _ship_by_utc(ship_by, file.timezone)
            except ValueError as exc:
                problems.append(RuleProblem(f"exemptions[{i}].ship_by", str(exc)))
        exemptions.append(
            ExemptionRule(
                name=exemption.name,
                paid_from=exemption.paid_from,
                paid_to=exemption.paid_to,
                regions=tuple(exemption.regions),
                ship_by=ship_by,
                exclude_from=tuple(exemption.exclude_from),
            )
        )
    return tuple(exemptions), problems


def parse_rules(data: Mapping[str, Any], source: str = "<rules>") -> Rules:
    """Validate a parsed TOML mapping and build `Rules`.

    Raises `RulesError` with every problem found, each with its key path: those of the file's
    tables first, then (once the tables are right) the weights of each category's merged rules
    and the exemptions' `ship_by` read in the rules' time zone.
    """
    try:
        file = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(source, _problems(exc)) from None
    default = _rule_set(file.dimension_weights, file.indicators)
    categories: dict[int, RuleSet] = {}
    problems: list[RuleProblem] = []
    for key, override in file.categories.items():
        merged = _with_override(default, override)
        found = [
            _sum_problem(merged.dimension_weights, "dimension weights"),
            *_indicator_weight_problems({i: r.weight for i, r in merged.indicators.items()}),
        ]
        problems += [RuleProblem(f"categories.{key}", p) for p in found if p]
        categories[int(key)] = merged
    exemptions, exemption_problems = _exemption_rules(file)
    problems += exemption_problems
    if problems:
        raise RulesError(source, problems)
    privileges, gates = file.privileges, file.gates
    return Rules(
        version=file.version,
        timezone=file.timezone,
        window_days=file.window_days,
        min_orders=file.min_orders,
        min_item_orders=file.min_item_orders,
        k_item=file.k_item,
        max_daily_change=file.max_daily_change,
        pxi_knots=file.pxi_knots,
        shop_weight_knots=file.shop_weight_knots,
        item_weight_knots=file.item_weight_knots,
        default=default,
        categories=categories,
        bonus={item: BonusRule(rule.threshold, rule.points) for item, rule in file.bonus},
        labels={label: LabelRule(rule.enter, rule.exit, rule.min_n) for label, rule in file.labels},
        autonomous_min_score=privileges.autonomous_min_score,
        negotiate_first_min_score=privileges.negotiate_first_min_score,
        campaign_min_score=privileges.campaign_min_score,
        campaign_min_pxi=privileges.campaign_min_pxi,
        gates=GateRules(
            trailing_days=gates.trailing_days,
            min_rows_vs_median=gates.min_rows_vs_median,
            max_quarantine_share=gates.max_quarantine_share,
            max_band_change_share=gates.max_band_change_share,
            min_rows=dict(gates.min_rows),
        ),
        exemptions=exemptions,
        source=source,
    )


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _without_nulls(node: Any) -> Any:
    """The schema as TOML needs it: TOML has no null, so an optional key is one that may be
    left out, not one that may be null (pydantic writes `anyOf: [X, null]`, `default: null`)."""
    if isinstance(node, list):
        return [_without_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned = {k: _without_nulls(v) for k, v in node.items() if not (k == "default" and v is None)}
    branches = cleaned.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            del cleaned["anyOf"]
            cleaned = {**kept[0], **cleaned}
        else:
            cleaned["anyOf"] = kept
    return cleaned


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rules file, generated from `RulesFile` (shipped as
    docs/rules.schema.json for editors; a test keeps that file equal to this)."""
    return {"$schema": JSON_SCHEMA_DIALECT, **_without_nulls(RulesFile.model_json_schema())}
