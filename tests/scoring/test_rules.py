"""Rules parsing (SCORING.md 11, readings 12.10 and 12.12)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import tomllib
from collections.abc import Callable

import pytest

from scoring.catalog import EXCLUDABLE_INDICATORS, INDICATOR_BY_ID, INDICATORS
from scoring.indicators import RATIOS
from scoring.rules import (
    BonusRule,
    ExemptionRule,
    IndicatorRule,
    LabelRule,
    RulesError,
    parse_rules,
)
from tests.builders import default_rules_dict


def _parse_changed(change: Callable[[dict], None]):
    data = copy.deepcopy(default_rules_dict())
    change(data)
    return parse_rules(data, "test.toml")


def test_default_rules_file_parses_with_the_spec_values():
    rules = parse_rules(default_rules_dict(), "rules.default.toml")

    assert rules.version == "2026.2"
    assert rules.timezone == "Asia/Shanghai"
    assert (rules.window_days, rules.min_orders, rules.min_item_orders) == (30, 30, 5)
    assert rules.k_item == 10.0
    assert rules.max_daily_change == 0.10
    assert rules.default.dimension_weights == {"product": 0.35, "logistics": 0.30, "service": 0.35}
    assert set(rules.default.indicators) == set(INDICATOR_BY_ID)
    assert rules.default.indicators["pickup_on_time_rate"] == IndicatorRule(
        weight=0.3,
        k=20.0,
        knots=((0.80, 3.0), (0.90, 4.0), (0.95, 4.5), (0.98, 4.8), (1.0, 5.0)),
    )
    assert rules.default.indicators["refund_handling_hours"] == IndicatorRule(
        weight=0.15,
        k=20.0,
        knots=((2.0, 5.0), (12.0, 4.8), (24.0, 4.5), (48.0, 4.0), (96.0, 3.0)),
    )
    assert rules.pxi_knots[0] == (0.0, 100.0) and rules.pxi_knots[-1] == (0.30, 0.0)
    assert rules.shop_weight_knots == ((3.0, 0.6), (4.0, 0.85), (4.4, 1.0), (4.8, 1.3), (5.0, 1.5))
    assert rules.bonus == {
        "return_insurance_share": BonusRule(threshold=0.8, points=0.05),
        "next_day_delivery_share": BonusRule(threshold=0.2, points=0.05),
    }
    assert rules.labels["fast_shipping"] == LabelRule(enter=24.0, exit=30.0, min_n=30)
    assert rules.labels["top_experience"] == LabelRule(enter=4.8, exit=4.75, min_n=0)
    assert (
        rules.autonomous_min_score,
        rules.negotiate_first_min_score,
        rules.campaign_min_score,
        rules.campaign_min_pxi,
    ) == (4.8, 4.5, 4.2, 60.0)
    assert set(rules.categories) == {1001}


def test_indicator_weights_of_each_dimension_sum_to_one_in_the_default_file():
    rules = parse_rules(default_rules_dict())
    for dimension in ("product", "logistics", "service"):
        total = sum(
            rule.weight
            for ind_id, rule in rules.default.indicators.items()
            if INDICATOR_BY_ID[ind_id].dimension == dimension
        )
        assert total == pytest.approx(1.0, abs=1e-9)


def test_knots_are_sorted_by_value():
    # 12.12: knots given out of order are sorted by value
    def reverse_knots(d):
        d["indicators"]["door_delivery_rate"]["knots"].reverse()

    rules = _parse_changed(reverse_knots)
    assert rules.default.indicators["door_delivery_rate"].knots == (
        (0.3, 3.0),
        (0.6, 4.0),
        (0.8, 4.5),
        (0.9, 4.8),
        (1.0, 5.0),
    )


def _set(path: str, value) -> Callable[[dict], None]:
    """A change setting the value at a dotted key path (creating tables on the way)."""

    def change(data: dict) -> None:
        *tables, last = path.split(".")
        for key in tables:
            data = data.setdefault(key, {})
        data[last] = value

    return change


def _delete(path: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        *tables, last = path.split(".")
        for key in tables:
            data = data[key]
        del data[last]

    return change


REFUSED = [
    pytest.param(
        _set("dimension_weights.product", 0.40),  # 0.40 + 0.30 + 0.35 = 1.05
        r"dimension_weights.*sum to 1",
        id="dimension-weights-sum",
    ),
    pytest.param(
        _set("indicators.quality_refund_rate.weight", 0.6),  # product: 0.6 + 0.5 = 1.1
        r"indicators.*product.*sum to 1",
        id="indicator-weights-of-a-dimension-sum",
    ),
    pytest.param(
        # higher is better, but the score drops from 4.0 at 0.90 to 3.9 at 0.95
        _set(
            "indicators.pickup_on_time_rate.knots",
            [[0.80, 3.0], [0.90, 4.0], [0.95, 3.9], [0.98, 4.8], [1.0, 5.0]],
        ),
        r"indicators\.pickup_on_time_rate\.knots.*not monotone",
        id="knots-turn-the-wrong-way-higher-better",
    ),
    pytest.param(
        # lower is better, but the score rises from 4.0 at 0.0 to 4.8 at 0.005
        _set(
            "indicators.quality_refund_rate.knots",
            [[0.0, 4.0], [0.005, 4.8], [0.015, 4.5], [0.03, 4.0], [0.08, 3.0]],
        ),
        r"indicators\.quality_refund_rate\.knots.*not monotone",
        id="knots-turn-the-wrong-way-lower-better",
    ),
    pytest.param(
        _set(
            "indicators.pickup_on_time_rate.knots",
            [[0.80, 3.0], [0.90, 4.0], [0.90, 4.2], [0.98, 4.8], [1.0, 5.0]],
        ),
        r"indicators\.pickup_on_time_rate\.knots.*two knots at value 0\.9",
        id="duplicate-knot-values",
    ),
    pytest.param(
        _set(
            "indicators.pickup_on_time_rate.knots",
            [[0.80, 2.0], [0.90, 4.0], [0.95, 4.5], [0.98, 4.8], [1.0, 5.0]],
        ),
        r"indicators\.pickup_on_time_rate\.knots.*\[3\.0, 5\.0\]",
        id="knot-score-outside-3-5",
    ),
    pytest.param(
        _set("indicators.pickup_rate", {"weight": 0.0, "k": 20, "knots": [[0.8, 3.0]]}),
        r"indicators.*unknown id\(s\) pickup_rate",
        id="unknown-indicator-id",
    ),
    pytest.param(_set("colour", "blue"), r"unknown key\(s\) colour", id="unknown-top-level-key"),
    pytest.param(_delete("min_orders"), r"missing key\(s\) min_orders", id="missing-top-level-key"),
    pytest.param(
        _set("indicators.negative_review_rate.kk", 20),
        r"indicators\.negative_review_rate.*kk",
        id="unknown-indicator-field",
    ),
    pytest.param(
        # lower is better (hours): keeping must be easier, so exit must be >= enter (24)
        _set("labels.fast_shipping.exit", 20.0),
        r"labels\.fast_shipping.*wrong side",
        id="label-exit-wrong-side-lower-better",
    ),
    pytest.param(
        # higher is better (a share): exit must be <= enter (0.95)
        _set("labels.high_cs_satisfaction.exit", 0.97),
        r"labels\.high_cs_satisfaction.*wrong side",
        id="label-exit-wrong-side-higher-better",
    ),
    pytest.param(
        _set("categories.1001.indicators.pickup_rate", {"k": 5}),
        r"categories\.1001\.indicators: unknown id\(s\) pickup_rate",
        id="category-override-unknown-indicator",
    ),
    pytest.param(
        # 1001 logistics: 0.5 + 0.25 + 0.2 + 0.15 + 0.1 = 1.2
        _set("categories.1001.indicators.pickup_on_time_rate.weight", 0.5),
        r"categories\.1001.*logistics.*sum to 1",
        id="category-override-breaks-weight-sum",
    ),
    pytest.param(
        _set(
            "categories.1001.indicators.pickup_on_time_rate.knots",
            [[0.85, 5.0], [1.0, 3.0]],
        ),
        r"categories\.1001\.indicators\.pickup_on_time_rate\.knots.*not monotone",
        id="category-override-knots-wrong-way",
    ),
    pytest.param(
        _set("categories.fresh.indicators.pickup_on_time_rate.k", 5),
        r"categories\.fresh",
        id="category-key-not-an-id",
    ),
    # issue 23: "+1001" silently replaced [categories.1001]; 10**20 days overflowed
    pytest.param(
        _set("categories.+1001.indicators.pickup_on_time_rate.k", 5),
        r"categories\.\+1001: category keys must be category ids in decimal",
        id="category-key-with-a-sign",
    ),
    pytest.param(
        _set("categories.01001.indicators.pickup_on_time_rate.k", 5),
        r"categories\.01001: category keys",
        id="category-key-with-a-leading-zero",
    ),
    pytest.param(
        _set("categories.9999999999.indicators.pickup_on_time_rate.k", 5),
        r"categories\.9999999999: category keys",
        id="category-key-beyond-int32",
    ),
    pytest.param(
        _set("window_days", 10**20), r"window_days: must be <= 366", id="window-days-huge"
    ),
    pytest.param(
        _set("shop_weight_knots", [[3.0, -0.5], [5.0, 1.5]]),
        r"shop_weight_knots: scores must lie in \[0.0, 10.0\], got \[-0.5\]",
        id="negative-traffic-weight",
    ),
    pytest.param(
        _set("item_weight_knots", [[0.0, 0.5], [100.0, 1e9]]),
        r"item_weight_knots: scores must lie in \[0.0, 10.0\]",
        id="huge-traffic-weight",
    ),
    pytest.param(
        _set("min_orders", 2**40), r"min_orders: must be <= 2147483647", id="min-orders-huge"
    ),
]


@pytest.mark.parametrize(("change", "message"), REFUSED)
def test_bad_rules_are_refused_with_a_message_naming_the_key(change, message):
    with pytest.raises(RulesError, match=message) as caught:
        _parse_changed(change)
    assert "test.toml" in str(caught.value)  # and the file


def test_the_default_1001_override_replaces_only_the_pickup_knots():
    rules = parse_rules(default_rules_dict())
    default, fresh = rules.default, rules.categories[1001]

    pickup = fresh.indicators["pickup_on_time_rate"]
    assert pickup.knots == ((0.85, 3.0), (0.93, 4.0), (0.97, 4.5), (0.99, 4.8), (1.0, 5.0))
    assert (pickup.weight, pickup.k) == (0.3, 20.0)  # not named: kept from the defaults
    for ind_id in INDICATOR_BY_ID:
        if ind_id != "pickup_on_time_rate":
            assert fresh.indicators[ind_id] == default.indicators[ind_id]
    assert fresh.dimension_weights == default.dimension_weights


def test_an_override_replaces_only_the_keys_it_names():
    def override(d):
        d["categories"]["7"] = {
            "indicators": {"negative_review_rate": {"k": 5}},
            # product 0.40 + logistics 0.25 + service (kept) 0.35 = 1
            "dimension_weights": {"product": 0.40, "logistics": 0.25},
        }

    rules = _parse_changed(override)
    seven = rules.categories[7]
    assert seven.indicators["negative_review_rate"] == IndicatorRule(
        weight=0.5, k=5.0, knots=rules.default.indicators["negative_review_rate"].knots
    )
    assert seven.dimension_weights == {"product": 0.40, "logistics": 0.25, "service": 0.35}
    # the other category keeps its own override, untouched by category 7
    assert rules.categories[1001].indicators["negative_review_rate"].k == 20.0
    assert rules.rule_set(7) is seven
    assert rules.rule_set(None) is rules.default  # no main category: the defaults (12.10)
    assert rules.rule_set(999) is rules.default


def test_an_override_may_move_weight_inside_a_dimension_if_it_still_sums_to_one():
    def override(d):
        d["categories"]["8"] = {
            "indicators": {
                "quality_refund_rate": {"weight": 0.7},
                "negative_review_rate": {"weight": 0.3},
            }
        }

    rules = _parse_changed(override)
    assert rules.categories[8].indicators["quality_refund_rate"].weight == 0.7
    assert rules.categories[8].indicators["quality_refund_rate"].k == 20.0
    assert rules.categories[8].indicators["negative_review_rate"].weight == 0.3


def test_the_message_names_the_file_and_the_key():
    with pytest.raises(RulesError) as caught:
        _parse_changed(_set("labels.fast_shipping.exit", 20.0))
    assert re.search(r"rules file test\.toml: labels\.fast_shipping: ", str(caught.value))


def test_every_problem_of_a_file_is_reported_at_once_with_its_key_path():
    """A file with several mistakes needs one edit, not one run per mistake (issue 21)."""

    def many_mistakes(d):
        d["window_days"] = 30.5
        d["colour"] = "blue"
        d["dimension_weights"]["product"] = 0.45
        d["indicators"]["pickup_on_time_rate"]["knots"][1] = [0.90, 2.0]
        d["indicators"]["delivery_hours"]["k"] = True
        d["labels"]["fast_shipping"]["exit"] = 20.0
        del d["labels"]["door_delivery"]["min_n"]
        d["gates"] = {"max_quarantine_share": 1.5, "min_rows": {"payments": 10}}

    with pytest.raises(RulesError) as caught:
        _parse_changed(many_mistakes)
    problems = {p.path: p.problem for p in caught.value.problems}
    assert list(problems) == [
        "window_days",
        "dimension_weights",
        "indicators.pickup_on_time_rate.knots",
        "indicators.delivery_hours.k",
        "labels.fast_shipping",
        "labels.door_delivery",
        "gates.max_quarantine_share",
        "gates.min_rows.payments",
        "",
    ]
    assert problems["window_days"] == "must be an integer, got 30.5"
    assert problems["dimension_weights"] == "weights must sum to 1, got 1.1"
    assert "not monotone" in problems["indicators.pickup_on_time_rate.knots"]
    assert problems["indicators.delivery_hours.k"] == "must be a number, got True"
    assert "wrong side" in problems["labels.fast_shipping"]
    assert problems["labels.door_delivery"] == "missing key(s) min_n"
    assert problems["gates.max_quarantine_share"] == "must be <= 1.0, got 1.5"
    assert problems["gates.min_rows.payments"].startswith("unknown key 'payments'")
    assert problems[""] == "unknown key(s) colour"
    # one line for a run's error, every problem in it
    text = str(caught.value)
    assert text.startswith("rules file test.toml: 9 problems: window_days: ") and "\n" not in text
    assert caught.value.lines()[-1] == "rules file test.toml: <top level>: unknown key(s) colour"


def test_merged_category_weights_are_checked_per_category():
    def two_bad_categories(d):
        d["categories"] = {
            "7": {"dimension_weights": {"product": 0.5}},  # 0.5 + 0.30 + 0.35
            "8": {"indicators": {"cs_response_rate": {"weight": 0.9}}},  # service 1.7
        }

    with pytest.raises(RulesError) as caught:
        _parse_changed(two_bad_categories)
    assert [(p.path, p.problem) for p in caught.value.problems] == [
        ("categories.7", "dimension weights must sum to 1, got 1.15"),
        ("categories.8", "service indicator weights must sum to 1, got 1.7"),
    ]


def test_the_json_schema_accepts_the_shipped_file_and_refuses_a_typo():
    """The schema editors use says what the parser says about the shape of a file."""
    import jsonschema

    from scoring.rules import rules_json_schema

    schema = rules_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(_as_editors_read_it(default_rules_dict())))
    typo = copy.deepcopy(default_rules_dict())
    typo["indicators"]["pickup_on_time_rate"]["kk"] = 20
    typo["categories"]["+1001"] = typo["categories"].pop("1001")
    paths = sorted(list(e.absolute_path) for e in validator.iter_errors(_as_editors_read_it(typo)))
    assert paths == [["categories"], ["indicators", "pickup_on_time_rate"]]


def test_the_json_schema_accepts_the_spec_exemption_and_refuses_a_bad_one():
    import jsonschema

    from scoring.rules import rules_json_schema

    validator = jsonschema.Draft202012Validator(rules_json_schema())
    data = default_rules_dict()
    data["exemptions"] = tomllib.loads(SPEC_EXEMPTION)["exemptions"] + [
        _exemption(name="local_ship_by", ship_by=dt.datetime(2026, 2, 26), regions=["GD"])
    ]
    assert not list(validator.iter_errors(_as_editors_read_it(data)))
    data["exemptions"] = [
        _exemption(name="Holiday", exclude_from=["platform_help_rate"], region=["GD"]),
        _exemption(ship_by=dt.date(2026, 2, 26)),
    ]
    paths = sorted(list(e.absolute_path) for e in validator.iter_errors(_as_editors_read_it(data)))
    assert paths == [
        ["exemptions", 0],  # the unknown key `region`
        ["exemptions", 0, "exclude_from", 0],
        ["exemptions", 0, "name"],
        ["exemptions", 1, "ship_by"],  # a date, not a date-time
    ]


def _as_editors_read_it(value):
    """A parsed TOML file as a JSON Schema validator in an editor sees it: TOML dates and
    date-times become their RFC 3339 text (JSON has no date type)."""
    if isinstance(value, dict):
        return {key: _as_editors_read_it(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_editors_read_it(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------------------------
# [[exemptions]] (SCORING.md 13.3)

# The example at the end of SCORING.md 11, word for word.
SPEC_EXEMPTION = """
[[exemptions]]
name = "spring_festival_2026"
paid_from = 2026-02-10
paid_to = 2026-02-23
ship_by = 2026-02-26T00:00:00+08:00
exclude_from = ["delivery_hours", "track_anomaly_rate", "delivery_promise_rate"]
"""
# Written out by hand from 13.3: the seven order-based indicators, then the four others.
SPEC_EXCLUDABLE = (
    "quality_refund_rate",
    "negative_review_rate",
    "pickup_on_time_rate",
    "delivery_promise_rate",
    "track_anomaly_rate",
    "delivery_hours",
    "door_delivery_rate",
    "cs_response_rate",
    "cs_satisfaction_rate",
    "refund_refusal_rate",
    "refund_handling_hours",
)


def _exemption(**keys) -> dict:
    """A valid exemption table (a TOML one as tomllib gives it), with `keys` set; a key set
    to None is left out."""
    table = {
        "name": "holiday",
        "paid_from": dt.date(2026, 2, 10),
        "paid_to": dt.date(2026, 2, 23),
        "exclude_from": ["delivery_hours"],
    }
    table.update(keys)
    return {k: v for k, v in table.items() if v is not None}


def _with_exemptions(*tables: dict, **top: object) -> Callable[[dict], None]:
    """A change replacing the file's exemptions (if the shipped file has some) with `tables`."""

    def change(data: dict) -> None:
        data["exemptions"] = list(tables)
        data.update(top)

    return change


def _problems_of(change: Callable[[dict], None]) -> list[tuple[str, str]]:
    with pytest.raises(RulesError) as caught:
        _parse_changed(change)
    return [(p.path, p.problem) for p in caught.value.problems]


def test_the_spec_exemption_example_parses_to_its_typed_values():
    rules = _parse_changed(_with_exemptions(*tomllib.loads(SPEC_EXEMPTION)["exemptions"]))
    assert rules.exemptions == (
        ExemptionRule(
            name="spring_festival_2026",
            paid_from=dt.date(2026, 2, 10),
            paid_to=dt.date(2026, 2, 23),
            regions=(),  # absent: every region
            # 2026-02-26 00:00 at +08:00 is 16:00 the day before in UTC
            ship_by=dt.datetime(2026, 2, 25, 16, 0, tzinfo=dt.UTC),
            exclude_from=("delivery_hours", "track_anomaly_rate", "delivery_promise_rate"),
        ),
    )
    assert rules.exemptions[0].ship_by.tzinfo is dt.UTC  # stored in UTC, not at +08:00
    # typed values compare as values, so equal files give equal rules
    assert rules == _parse_changed(_with_exemptions(*tomllib.loads(SPEC_EXEMPTION)["exemptions"]))
    assert rules != _parse_changed(_with_exemptions())


def test_no_exemptions_table_means_no_exemptions():
    def without(data: dict) -> None:
        data.pop("exemptions", None)

    assert _parse_changed(without).exemptions == ()
    assert _parse_changed(_with_exemptions()).exemptions == ()  # `exemptions = []`


def test_an_exemption_with_regions_and_only_a_ship_by():
    rules = _parse_changed(
        _with_exemptions(
            _exemption(
                name="typhoon_2026_08",
                regions=["GD", "HI"],
                ship_by=dt.datetime(2026, 8, 6, 12, tzinfo=dt.UTC),
                exclude_from=None,
            )
        )
    )
    [typhoon] = rules.exemptions
    assert (typhoon.regions, typhoon.exclude_from) == (("GD", "HI"), ())
    assert typhoon.ship_by == dt.datetime(2026, 8, 6, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("timezone", "local_time", "instant"),
    [
        # no offset: read in the rules' time zone, like paid_from and paid_to
        ("Asia/Shanghai", dt.datetime(2026, 2, 26), dt.datetime(2026, 2, 25, 16)),
        ("UTC", dt.datetime(2026, 2, 26), dt.datetime(2026, 2, 26)),
        # New York is UTC-5 in winter and UTC-4 in summer: the zone's offset on that day counts
        ("America/New_York", dt.datetime(2026, 1, 15, 9, 30), dt.datetime(2026, 1, 15, 14, 30)),
        ("America/New_York", dt.datetime(2026, 7, 15, 9, 30), dt.datetime(2026, 7, 15, 13, 30)),
    ],
)
def test_a_local_ship_by_is_read_in_the_rules_timezone(timezone, local_time, instant):
    rules = _parse_changed(_with_exemptions(_exemption(ship_by=local_time), timezone=timezone))
    assert rules.exemptions[0].ship_by == instant.replace(tzinfo=dt.UTC)
    assert rules.exemptions[0].ship_by.tzinfo is dt.UTC


def test_a_ship_by_with_an_offset_is_that_instant_whatever_the_timezone():
    at_plus_8 = dt.datetime(2026, 2, 26, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    rules = _parse_changed(_with_exemptions(_exemption(ship_by=at_plus_8), timezone="UTC"))
    assert rules.exemptions[0].ship_by == dt.datetime(2026, 2, 25, 16, tzinfo=dt.UTC)


def test_excludable_indicators_are_those_of_13_3_and_each_counts_one_kind_of_row():
    assert EXCLUDABLE_INDICATORS == SPEC_EXCLUDABLE
    # the catalogue's kind of row is the one the indicator's ratio is computed over
    ratios = {
        ind: make(dt.datetime(2026, 3, 20, 16, tzinfo=dt.UTC)) for ind, make in RATIOS.items()
    }
    assert {ind: ratio.source for ind, ratio in ratios.items()} == {
        ind.id: ind.source for ind in INDICATORS if ind.source is not None
    }
    assert INDICATOR_BY_ID["platform_help_rate"].source is None  # refunds + sessions over |V|


UNKNOWN_INDICATOR = "unknown indicator 'delivery_time'; exemptions may exclude " + ", ".join(
    SPEC_EXCLUDABLE
)
PLATFORM_HELP = (
    "platform_help_rate cannot be excluded: it mixes help refunds and escalated sessions over "
    "|V| (valid orders), so no one kind of row can leave it; SCORING.md 13.3 does not allow it"
)
NO_EFFECT = "has neither ship_by nor a non-empty exclude_from, so it would change nothing"
NEW_YORK = {"timezone": "America/New_York"}

EXEMPTION_ERRORS = [
    pytest.param(
        [_exemption(exclude_from=["delivery_hours", "platform_help_rate"])],
        {},
        [("exemptions[0].exclude_from[1]", PLATFORM_HELP)],
        id="platform-help-rate",
    ),
    pytest.param(
        [_exemption(exclude_from=["delivery_time"])],
        {},
        [("exemptions[0].exclude_from[0]", UNKNOWN_INDICATOR)],
        id="unknown-indicator",
    ),
    pytest.param(
        [_exemption(), _exemption(name="other"), _exemption()],
        {},
        [
            (
                "exemptions",
                "name 'holiday' is used by exemptions[0] and exemptions[2] (names must be unique)",
            )
        ],
        id="two-exemptions-with-one-name",
    ),
    pytest.param(
        [_exemption(paid_from=dt.date(2026, 2, 24), paid_to=dt.date(2026, 2, 23))],
        {},
        [("exemptions[0]", "paid_from 2026-02-24 is after paid_to 2026-02-23")],
        id="paid-from-after-paid-to",
    ),
    pytest.param(
        [_exemption(exclude_from=None), _exemption(name="other", exclude_from=[])],
        {},
        [("exemptions[0]", NO_EFFECT), ("exemptions[1]", NO_EFFECT)],
        id="neither-ship-by-nor-exclude-from",
    ),
    pytest.param(
        [
            _exemption(name="Spring-Festival"),
            _exemption(name=""),
            _exemption(name=2026),
            _exemption(name=None),
        ],
        {},
        [
            (
                "exemptions[0].name",
                "names are lower-case letters, digits and _ only, got 'Spring-Festival'",
            ),
            ("exemptions[1].name", "names are lower-case letters, digits and _ only, got ''"),
            ("exemptions[2].name", "must be a non-empty string, got 2026"),
            ("exemptions[3]", "missing key(s) name"),
        ],
        id="bad-names",
    ),
    pytest.param(
        [_exemption(region=["GD"])],  # a typo of `regions`: never ignored
        {},
        [("exemptions[0]", "unknown key(s) region")],
        id="unknown-key",
    ),
    pytest.param(
        [
            _exemption(paid_from="2026-02-10", paid_to=dt.datetime(2026, 2, 23)),
            _exemption(name="other", ship_by=dt.date(2026, 2, 26)),
        ],
        {},
        [
            (
                "exemptions[0].paid_from",
                "must be a TOML local date like 2026-02-10, got '2026-02-10'",
            ),
            (
                "exemptions[0].paid_to",
                "must be a TOML local date like 2026-02-10, got "
                "datetime.datetime(2026, 2, 23, 0, 0)",
            ),
            (
                "exemptions[1].ship_by",
                "must be a TOML date-time like 2026-02-26T00:00:00+08:00, got "
                "datetime.date(2026, 2, 26)",
            ),
        ],
        id="dates-of-the-wrong-toml-type",
    ),
    pytest.param(
        [
            _exemption(exclude_from=["delivery_hours", "track_anomaly_rate", "delivery_hours"]),
            _exemption(name="other", regions=["GD", "GD"]),
        ],
        {},
        [
            ("exemptions[0].exclude_from", "lists delivery_hours more than once"),
            ("exemptions[1].regions", "lists GD more than once"),
        ],
        id="an-id-or-region-twice",
    ),
    pytest.param(
        [
            # 2026-03-08 02:30 New York: the clocks jump from 02:00 to 03:00
            _exemption(ship_by=dt.datetime(2026, 3, 8, 2, 30)),
            # 2026-11-01 01:30 New York: the clocks go back from 02:00 to 01:00
            _exemption(name="other", ship_by=dt.datetime(2026, 11, 1, 1, 30)),
            # the last hour of year 9999 at UTC-5 is in year 10000 in UTC
            _exemption(
                name="far",
                ship_by=dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
            ),
        ],
        NEW_YORK,
        [
            (
                "exemptions[0].ship_by",
                "2026-03-08T02:30:00 does not exist in America/New_York (a clock change): "
                "write it with an offset",
            ),
            (
                "exemptions[1].ship_by",
                "2026-11-01T01:30:00 happens twice in America/New_York (a clock change): "
                "write it with an offset",
            ),
            ("exemptions[2].ship_by", "9999-12-31T23:00:00-05:00 is out of range"),
        ],
        id="ship-by-skipped-or-repeated-by-the-clocks-or-out-of-range",
    ),
]


@pytest.mark.parametrize(("tables", "top", "expected"), EXEMPTION_ERRORS)
def test_exemption_errors_name_their_key_path(tables, top, expected):
    assert _problems_of(_with_exemptions(*tables, **top)) == expected


def test_exemptions_must_be_an_array_of_tables():
    def one_table(data: dict) -> None:
        data["exemptions"] = _exemption()  # [exemptions] instead of [[exemptions]]

    [(path, problem)] = _problems_of(one_table)
    assert path == "exemptions" and problem.startswith("must be a list, got {'name': 'holiday'")


def test_exemption_problems_are_reported_with_the_other_problems_of_the_file():
    def mistakes(data: dict) -> None:
        data["min_orders"] = -1
        data["exemptions"] = [
            _exemption(exclude_from=["platform_help_rate"]),
            _exemption(name="other", paid_from=dt.date(2026, 3, 1)),
        ]

    assert _problems_of(mistakes) == [
        ("min_orders", "must be >= 0, got -1"),
        ("exemptions[0].exclude_from[0]", PLATFORM_HELP),
        ("exemptions[1]", "paid_from 2026-03-01 is after paid_to 2026-02-23"),
    ]


def test_a_local_ship_by_is_checked_with_the_merged_category_weights():
    """Both need more than one table (the zone, the defaults), so both come once the tables are
    right, and together."""

    def mistakes(data: dict) -> None:
        data["timezone"] = "America/New_York"
        data["categories"]["7"] = {"dimension_weights": {"product": 0.5}}  # 0.5 + 0.30 + 0.35
        data["exemptions"] = [_exemption(ship_by=dt.datetime(2026, 3, 8, 2, 0))]

    assert _problems_of(mistakes) == [
        ("categories.7", "dimension weights must sum to 1, got 1.15"),
        (
            "exemptions[0].ship_by",
            "2026-03-08T02:00:00 does not exist in America/New_York (a clock change): write it "
            "with an offset",
        ),
    ]
