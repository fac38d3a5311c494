"""What-if comparison (scoring/analysis/whatif.py): pure frames, checked on the committed sample
and on
hand-built frames.

The sample's facts for 2026-02-28 are loaded and computed once for the module; each rule set is
then scored from them with `score_facts`, exactly as the what-if command does.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from pipelines.state import StateOptions, window_facts
from scoring.analysis.whatif import (
    ABSENT,
    BONUS_DRIVER,
    band_direction,
    band_migration,
    indicator_drivers,
    label_changes,
    migration_bands,
    rules_diff,
    same_window,
    shop_changes,
    top_movers,
    whatif_frames,
)
from scoring.contract import PREVIOUS_LABELS_SCHEMA, PREVIOUS_WEIGHTS_SCHEMA
from scoring.daily import DayFacts, rules_window, score_facts
from scoring.rules import Knots, Rules
from tests.builders import default_rules

from ..support import rules_with

SAMPLE_RAW = Path(__file__).resolve().parents[3] / "data_samples" / "raw"
SAMPLE_DATE = dt.date(2026, 2, 28)
Tables = dict[str, pl.LazyFrame]


@pytest.fixture(scope="module")
def sample_facts() -> DayFacts:
    """The sample's facts for its last date, loaded and computed once, materialised."""
    window = rules_window(default_rules(), SAMPLE_DATE)
    with tempfile.TemporaryDirectory() as location:
        facts = window_facts(SAMPLE_RAW, window, location, StateOptions()).facts
    items, activity = pl.collect_all([facts.items, facts.activity])
    return DayFacts(window, items.lazy(), activity.lazy())


def scored(facts: DayFacts, rules: Rules) -> Tables:
    """The six tables of one rule set, collected once and handed on as LazyFrames."""
    no_history = (
        pl.LazyFrame(schema=PREVIOUS_LABELS_SCHEMA),
        pl.LazyFrame(schema=PREVIOUS_WEIGHTS_SCHEMA),
    )  # nothing published for D-1
    lazy = score_facts(facts, rules, *no_history)
    return dict(zip(lazy, [f.lazy() for f in pl.collect_all(list(lazy.values()))], strict=True))


def compare(old: Tables, new: Tables, facts_shared: bool = True) -> dict[str, pl.DataFrame]:
    frames = whatif_frames(old, new, facts_shared)
    return dict(zip(frames, pl.collect_all(list(frames.values())), strict=True))


@pytest.fixture(scope="module")
def base_tables(sample_facts: DayFacts) -> Tables:
    return scored(sample_facts, default_rules())


# --------------------------------------------------------------------------------------------
# identical rules


@pytest.fixture(scope="module")
def identical(sample_facts: DayFacts, base_tables: Tables) -> dict[str, pl.DataFrame]:
    # a second, separately parsed and separately scored copy of the same rules
    return compare(base_tables, scored(sample_facts, default_rules()))


def test_identical_rules_give_an_empty_migration(identical) -> None:
    summary = identical["summary"].row(0, named=True)
    assert summary["shops"] == 299 and summary["scored_old"] == summary["scored_new"] == 206
    assert summary["band_changed"] == summary["moved_up"] == summary["moved_down"] == 0
    assert identical["moves_by_category"].is_empty()
    migration = identical["migration"]
    assert migration.height == 25  # the full 5 x 5 grid
    assert migration.filter(pl.col("direction") != "same")["shops"].sum() == 0
    assert migration["shops"].sum() == 299
    assert (identical["shop_changes"]["direction"] == "same").all()


def test_identical_rules_give_zero_shifts(identical) -> None:
    summary = identical["summary"].row(0, named=True)
    assert summary["score_up"] == summary["score_down"] == 0
    assert summary["weight_changed"] == summary["target_weight_changed"] == 0
    changes = identical["shop_changes"]
    assert (changes["score_change"].drop_nulls() == 0.0).all()
    assert (changes["target_weight_change"] == 0.0).all()
    assert (changes["weight_change"] == 0.0).all()
    assert (identical["shares"]["share_change"] == 0.0).all()
    assert (identical["shares"]["count_change"] == 0).all()
    for name in ("shop_weight_by_category", "item_weight_by_category"):
        frame = identical[name]
        assert frame.height == 7, name
        assert (frame["weight_change"] == 0.0).all(), name
        assert (frame["weight_share_change"] == 0.0).all(), name
    assert identical["top_gains"].is_empty() and identical["top_losses"].is_empty()
    labels = identical["labels"]
    assert labels.height == 7
    assert (labels["gained"] == 0).all() and (labels["lost"] == 0).all()
    assert (labels["held_old"] == labels["held_new"]).all()


def test_identical_rules_have_no_rule_changes() -> None:
    assert rules_diff(default_rules(), default_rules()).is_empty()


# --------------------------------------------------------------------------------------------
# raising one indicator's bar


def with_knots(indicator: str, knots: list[list[float]]) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["indicators"][indicator]["knots"] = knots

    return change


def changed_interval(old: Knots, new: Knots) -> tuple[float, float]:
    """The open interval of values where two knot lists (same scores, some values moved) give
    different scores: between the last knot shared before the first moved one and the first
    knot shared after the last moved one."""
    moved = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    first, last = moved[0], moved[-1]
    low = old[first - 1][0] if first > 0 else -math.inf
    high = old[last + 1][0] if last + 1 < len(old) else math.inf
    return low, high


STRICTER = {
    # higher is better: the values of the two lowest knots raised
    "cs_response_rate": [[0.70, 3.0], [0.85, 4.0], [0.90, 4.5], [0.96, 4.8], [1.0, 5.0]],
    # lower is better: the bar is raised by lowering the values of the middle knots
    "delivery_hours": [[24.0, 5.0], [30.0, 4.8], [40.0, 4.5], [96.0, 4.0], [168.0, 3.0]],
}


@pytest.fixture(scope="module", params=sorted(STRICTER))
def stricter(request, sample_facts: DayFacts, base_tables: Tables):
    indicator = request.param
    rules = rules_with(with_knots(indicator, STRICTER[indicator]))
    new_tables = scored(sample_facts, rules)
    frames = compare(base_tables, new_tables)
    smoothed = (
        base_tables["shop_indicators"]
        .filter(pl.col("indicator") == indicator)
        .select("shop_id", "smoothed_value")
        .collect()
    )
    low, high = changed_interval(
        default_rules().default.indicators[indicator].knots,
        rules.default.indicators[indicator].knots,
    )
    return indicator, rules, new_tables, frames, smoothed, (low, high)


def test_stricter_knots_move_shops_only_downward(stricter) -> None:
    _, _, _, frames, _, _ = stricter
    changes = frames["shop_changes"]
    assert set(changes["direction"]) == {"same", "down"}
    summary = frames["summary"].row(0, named=True)
    assert summary["moved_down"] > 0, "a real test: some shops must change band"
    assert summary["moved_up"] == summary["moved_other"] == 0
    assert summary["score_up"] == 0 and summary["score_down"] > 0
    assert (changes["score_change"].drop_nulls() <= 0.0).all()
    assert (changes["target_weight_change"] <= 0.0).all()
    assert (changes["weight_change"] <= 0.0).all()
    assert frames["top_gains"].is_empty() and frames["top_losses"].height > 0
    # nothing is gained anywhere: no label, no tier, no campaign eligibility
    assert (frames["labels"]["gained"] == 0).all()
    shares = {r["metric"]: r for r in frames["shares"].to_dicts()}
    for metric in ("4.8+ shops", "campaign-eligible shops", "refund-only tier autonomous"):
        assert shares[metric]["count_change"] <= 0, metric
    assert shares["campaign-eligible items"]["count_change"] == 0  # items do not use the knots


def test_stricter_knots_move_only_shops_whose_value_lies_where_the_knots_changed(
    stricter,
) -> None:
    _, _, _, frames, smoothed, (low, high) = stricter
    changes = frames["shop_changes"].join(smoothed, on="shop_id", how="left")
    inside = (pl.col("smoothed_value") > low) & (pl.col("smoothed_value") < high)
    outside = changes.filter(~inside)
    affected = changes.filter(
        (pl.col("direction") != "same")
        | (pl.col("score_change") != 0.0)
        | (pl.col("target_weight_change") != 0.0)
    )
    # the "only" is not vacuous: scored shops do lie outside the changed interval ...
    assert outside.filter(pl.col("status_old") == "scored").height > 0
    # ... and none of them moves, not even by a rounding error
    assert (outside["direction"] == "same").all()
    assert (outside["score_change"].drop_nulls() == 0.0).all()
    assert (outside["target_weight_change"] == 0.0).all()
    # every shop that moves lies inside it
    assert affected.height > 0
    assert affected.filter(~inside).is_empty()


def test_stricter_knots_are_the_only_driver(stricter) -> None:
    indicator, _, _, frames, _, _ = stricter
    losers = frames["top_losses"]
    drivers = losers.select(pl.col("drivers").list.eval(pl.element().struct.field("indicator")))
    assert drivers.to_series().to_list() == [[indicator]] * losers.height
    effects = losers.select(pl.col("drivers").list.first().struct.field("effect"), "score_change")
    assert (effects["effect"] < 0).all()


def test_stricter_knots_list_exactly_that_rule(stricter) -> None:
    indicator, rules, _, _, _, _ = stricter
    diff = rules_diff(default_rules(), rules)
    assert diff["rule"].to_list() == [f"indicators.{indicator}.knots"]
    assert diff["scope"].to_list() == ["all shops"]
    assert diff["new"].item() == str(STRICTER[indicator]).replace("'", '"')


def test_drivers_add_up_to_the_score_change(stricter, base_tables: Tables) -> None:
    """Points lost + score - bonus = 5: the effects explain the whole change (cap not binding)."""
    _, _, new_tables, frames, _, _ = stricter
    changes = frames["shop_changes"].lazy()
    all_drivers = indicator_drivers(base_tables, new_tables, changes, top=20).collect()
    explained = (
        frames["shop_changes"]
        .filter(pl.col("score_change").is_not_null() & (pl.col("score_new") < 5.0))
        .join(all_drivers, on="shop_id", how="left")
        .with_columns(
            explained=pl.col("drivers").list.eval(pl.element().struct.field("effect")).list.sum()
        )
        .with_columns(pl.col("explained").fill_null(0.0))
    )
    assert explained.height > 100
    worst = explained.select((pl.col("explained") - pl.col("score_change")).abs().max()).item()
    assert worst < 1e-9


def test_a_stricter_category_override_moves_only_that_category(
    sample_facts: DayFacts, base_tables: Tables
) -> None:
    def override(data: dict) -> None:
        data["categories"]["1001"]["indicators"]["platform_help_rate"] = {
            "knots": [[0.0, 5.0], [0.001, 4.8], [0.0025, 4.5], [0.005, 4.0], [0.015, 3.0]]
        }

    rules = rules_with(override)
    frames = compare(base_tables, scored(sample_facts, rules))
    changes = frames["shop_changes"]
    moved = changes.filter(pl.col("score_change").fill_null(0.0) != 0.0)
    assert moved.height > 0 and set(moved["main_category_id"]) == {1001}
    assert set(frames["moves_by_category"]["main_category_id"]) <= {1001}
    weights = frames["shop_weight_by_category"]
    assert (weights.filter(pl.col("main_category_id") != 1001)["target_weight_change"] == 0).all()
    assert weights.filter(pl.col("main_category_id") == 1001)["target_weight_change"].item() < 0
    diff = rules_diff(default_rules(), rules)
    assert diff.select("rule", "scope", "note").rows() == [
        (
            "categories.1001.indicators.platform_help_rate.knots",
            "main category 1001",
            "new override (old: the default)",
        )
    ]


# --------------------------------------------------------------------------------------------
# the rules diff


def test_rules_diff_lists_each_changed_rule() -> None:
    def changes(data: dict) -> None:
        data["version"] = "2027.1"
        data["k_item"] = 12
        data["dimension_weights"].update(product=0.40, service=0.30)
        data["indicators"]["negative_review_rate"]["k"] = 30
        data["labels"]["fast_shipping"]["enter"] = 20.0
        data["bonus"]["next_day_delivery_share"]["points"] = 0.1
        data["privileges"]["campaign_min_score"] = 4.3
        data["shop_weight_knots"] = [[3.0, 0.5], [4.0, 0.85], [4.4, 1.0], [4.8, 1.3], [5.0, 1.5]]
        # an existing override changed, a new one added
        data["categories"]["1001"]["indicators"]["pickup_on_time_rate"]["knots"][0] = [0.86, 3.0]
        data["categories"]["1003"] = {"indicators": {"refund_refusal_rate": {"weight": 0.3}}}
        data["categories"]["1003"]["indicators"]["refund_handling_hours"] = {"weight": 0.05}

    diff = rules_diff(default_rules(), rules_with(changes))
    rows = {r["rule"]: r for r in diff.to_dicts()}
    assert set(rows) == {
        "version",
        "k_item",
        "dimension_weights.product",
        "dimension_weights.service",
        "indicators.negative_review_rate.k",
        "labels.fast_shipping.enter",
        "bonus.next_day_delivery_share.points",
        "privileges.campaign_min_score",
        "shop_weight_knots",
        "categories.1001.indicators.pickup_on_time_rate.knots",
        "categories.1003.indicators.refund_refusal_rate.weight",
        "categories.1003.indicators.refund_handling_hours.weight",
    }
    assert diff.height == len(rows)  # each rule once
    assert rows["k_item"]["old"] == "10.0" and rows["k_item"]["new"] == "12.0"
    assert rows["labels.fast_shipping.enter"]["scope"] == "all shops"
    assert rows["categories.1001.indicators.pickup_on_time_rate.knots"]["note"] == (
        "override changed"
    )
    new_override = rows["categories.1003.indicators.refund_refusal_rate.weight"]
    assert (new_override["scope"], new_override["old"], new_override["new"]) == (
        "main category 1003",
        "0.2",
        "0.3",
    )
    assert new_override["note"] == "new override (old: the default)"


def test_rules_diff_ignores_form_and_reports_inherited_defaults_once() -> None:
    def same_in_another_form(data: dict) -> None:
        data["indicators"]["delivery_hours"]["knots"].reverse()  # order of knots
        data["indicators"]["delivery_hours"]["k"] = 20.0  # 20 vs 20.0

    assert rules_diff(default_rules(), rules_with(same_in_another_form)).is_empty()

    def default_and_removed_override(data: dict) -> None:
        # category 1001 overrides pickup knots: a new default for them does not reach it ...
        data["indicators"]["pickup_on_time_rate"]["knots"][0] = [0.75, 3.0]
        # ... while a new default weight, which the category inherits, is one line for all
        data["indicators"]["pickup_on_time_rate"]["weight"] = 0.35
        data["indicators"]["delivery_promise_rate"]["weight"] = 0.20

    diff = rules_diff(default_rules(), rules_with(default_and_removed_override))
    assert set(diff["rule"]) == {
        "indicators.pickup_on_time_rate.knots",
        "indicators.pickup_on_time_rate.weight",
        "indicators.delivery_promise_rate.weight",
    }

    def removed(data: dict) -> None:
        del data["categories"]

    diff = rules_diff(default_rules(), rules_with(removed))
    assert diff.select("rule", "note").rows() == [
        (
            "categories.1001.indicators.pickup_on_time_rate.knots",
            "override removed (new: the default)",
        )
    ]


def test_rules_diff_shows_an_exemption_added_changed_or_removed_by_its_name() -> None:
    holiday = {
        "name": "spring_festival_2026",
        "paid_from": dt.date(2026, 2, 10),
        "paid_to": dt.date(2026, 2, 23),
        "ship_by": dt.datetime(2026, 2, 26, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        "exclude_from": ["delivery_hours"],
    }
    typhoon = {"name": "typhoon", "paid_from": dt.date(2026, 8, 1), "paid_to": dt.date(2026, 8, 3)}
    typhoon |= {"regions": ["GD"], "exclude_from": ["delivery_hours"]}

    def exemptions(*tables: dict) -> Callable[[dict], None]:
        def change(data: dict) -> None:
            data["exemptions"] = list(tables)

        return change

    none, one = rules_with(exemptions()), rules_with(exemptions(holiday))
    holiday_text = (
        '{"paid_from": "2026-02-10", "paid_to": "2026-02-23", "regions": [], '
        '"ship_by": "2026-02-25T16:00:00+00:00", "exclude_from": ["delivery_hours"]}'
    )
    assert rules_diff(none, one).rows() == [
        ("exemptions.spring_festival_2026", "all shops", "null", holiday_text, "new exemption")
    ]
    assert rules_diff(one, none).rows() == [
        ("exemptions.spring_festival_2026", "all shops", holiday_text, "null", "exemption removed")
    ]
    longer = rules_with(exemptions({**holiday, "paid_to": dt.date(2026, 2, 24)}, typhoon))
    diff = {row[0]: row for row in rules_diff(one, longer).rows()}
    assert set(diff) == {"exemptions.spring_festival_2026", "exemptions.typhoon"}
    assert diff["exemptions.spring_festival_2026"][2:] == (
        holiday_text,
        holiday_text.replace("2026-02-23", "2026-02-24"),
        None,
    )
    assert diff["exemptions.typhoon"][4] == "new exemption"
    assert rules_diff(longer, longer).is_empty()


def test_same_window_decides_whether_facts_can_be_shared() -> None:
    base = default_rules()
    assert same_window(
        base, rules_with(with_knots("cs_response_rate", STRICTER["cs_response_rate"]))
    )
    assert not same_window(base, default_rules(window_days=28))
    assert not same_window(base, default_rules(timezone="UTC"))
    zone = rules_diff(base, default_rules(timezone="UTC")).row(0, named=True)
    assert (zone["rule"], zone["old"], zone["new"]) == ("timezone", '"Asia/Shanghai"', '"UTC"')
    assert migration_bands(True) == ("4.8+", "4.5-4.8", "4.0-4.5", "<4.0", "unscored")
    assert migration_bands(False)[-1] == ABSENT


# --------------------------------------------------------------------------------------------
# hand-built frames


def side(rows: list[tuple], labels: list[tuple] = (), indicators: list[tuple] = ()) -> Tables:
    """A minimal side: (shop_id, category, score, band, bonus, target, weight, tier) per shop."""
    columns = ["shop_id", "main_category_id", "score", "band", "bonus", "target_weight", "weight"]
    shops = pl.LazyFrame(
        [r[:7] for r in rows], schema=dict.fromkeys(columns, None), orient="row"
    ).with_columns(
        pl.col("shop_id", "main_category_id").cast(pl.Int64),
        pl.col("score", "bonus", "target_weight", "weight").cast(pl.Float64),
        pl.col("band").cast(pl.String),
        status=pl.when(pl.col("score").is_null())
        .then(pl.lit("insufficient_orders"))
        .otherwise(pl.lit("scored")),
        refund_only_tier=pl.lit("standard"),
        campaign_eligible=pl.lit(False),
    )
    return {
        "shop_scores": shops,
        "shop_traffic_weights": shops,
        "shop_labels": pl.LazyFrame(
            list(labels), schema={"shop_id": pl.Int64, "label": pl.String}, orient="row"
        ),
        "shop_indicators": pl.LazyFrame(
            list(indicators),
            schema={
                "shop_id": pl.Int64,
                "indicator": pl.String,
                "smoothed_value": pl.Float64,
                "indicator_score": pl.Float64,
                "points_lost": pl.Float64,
            },
            orient="row",
        ),
    }


def test_band_direction_is_up_down_same_or_other() -> None:
    pairs = pl.DataFrame(
        {
            "old": ["4.5-4.8", "4.5-4.8", "<4.0", "4.8+", "unscored", "4.0-4.5", ABSENT],
            "new": ["4.5-4.8", "4.0-4.5", "4.0-4.5", "unscored", "4.8+", ABSENT, "<4.0"],
        }
    )
    directions = pairs.select(band_direction(pl.col("old"), pl.col("new")))
    assert directions.to_series().to_list() == [
        "same", "down", "up", "other", "other", "other", "other",
    ]  # fmt: skip


def test_migration_counts_shops_from_each_band_to_each_band() -> None:
    old = side(
        [
            (1, 7, 4.9, "4.8+", 0.0, 1.4, 1.4),
            (2, 7, 4.6, "4.5-4.8", 0.0, 1.2, 1.2),
            (3, 8, 4.6, "4.5-4.8", 0.0, 1.2, 1.2),
            (4, 8, None, "unscored", 0.0, 1.0, 1.0),
        ]
    )
    new = side(
        [
            (1, 7, 4.7, "4.5-4.8", 0.0, 1.2, 1.2),
            (2, 7, 4.6, "4.5-4.8", 0.0, 1.2, 1.2),
            (3, 8, 4.1, "4.0-4.5", 0.0, 0.9, 0.9),
            (5, 8, 4.2, "4.0-4.5", 0.0, 0.9, 0.9),  # on the new side only
        ]
    )
    changes = shop_changes(old, new)
    bands = migration_bands(facts_shared=False)
    grid = band_migration(changes, bands).collect()
    assert grid.height == len(bands) ** 2
    cells = {(r["band_old"], r["band_new"]): r["shops"] for r in grid.to_dicts() if r["shops"]}
    assert cells == {
        ("4.8+", "4.5-4.8"): 1,
        ("4.5-4.8", "4.5-4.8"): 1,
        ("4.5-4.8", "4.0-4.5"): 1,
        ("unscored", ABSENT): 1,
        (ABSENT, "4.0-4.5"): 1,
    }
    per_category = band_migration(changes, bands, by="main_category_id").collect()
    assert per_category.height == 2 * len(bands) ** 2
    moved = per_category.filter((pl.col("direction") != "same") & (pl.col("shops") > 0))
    assert moved.select("main_category_id", "band_old", "band_new").rows() == [
        (7, "4.8+", "4.5-4.8"),
        (8, "4.5-4.8", "4.0-4.5"),
        (8, "unscored", ABSENT),
        (8, ABSENT, "4.0-4.5"),
    ]
    # a shop missing on one side counts with weight 0 there
    shop_5 = changes.filter(pl.col("shop_id") == 5).collect().row(0, named=True)
    assert shop_5["weight_change"] == pytest.approx(0.9)
    assert shop_5["score_change"] is None


def test_label_changes_count_gains_and_losses_per_label() -> None:
    rows = [(1, 7, 4.9, "4.8+", 0.0, 1.4, 1.4), (2, 7, 4.6, "4.5-4.8", 0.0, 1.2, 1.2)]
    old = side(rows, labels=[(1, "top_experience"), (1, "door_delivery"), (2, "door_delivery")])
    new = side(rows, labels=[(1, "door_delivery"), (2, "door_delivery"), (2, "fast_shipping")])
    labels = {r["label"]: r for r in label_changes(old, new).collect().to_dicts()}
    assert len(labels) == 7  # the whole catalogue, zeros included
    assert labels["top_experience"] | {} == {
        "label": "top_experience", "held_old": 1, "held_new": 0, "gained": 0, "lost": 1, "net": -1,
    }  # fmt: skip
    assert (labels["door_delivery"]["gained"], labels["door_delivery"]["lost"]) == (0, 0)
    assert (labels["fast_shipping"]["gained"], labels["fast_shipping"]["net"]) == (1, 1)


def test_top_movers_rank_by_target_weight_and_carry_their_drivers() -> None:
    old = side(
        [
            (1, 7, 4.5, "4.5-4.8", 0.0, 1.10, 1.10),
            (2, 7, 4.5, "4.5-4.8", 0.05, 1.10, 1.10),
            (3, 7, 4.5, "4.5-4.8", 0.0, 1.10, 1.10),
            (4, 7, 4.5, "4.5-4.8", 0.0, 1.10, 1.10),
        ],
        indicators=[
            (1, "platform_help_rate", 0.004, 4.6, 0.10),
            (1, "cs_response_rate", 0.9, 4.5, 0.05),
            (3, "cs_response_rate", 0.9, 4.5, 0.05),
        ],
    )
    new = side(
        [
            (1, 7, 4.2, "4.0-4.5", 0.0, 0.95, 1.00),  # clamped on the date
            (2, 7, 4.45, "4.0-4.5", 0.0, 1.05, 1.05),  # lost its bonus
            (3, 7, 4.6, "4.5-4.8", 0.0, 1.20, 1.20),
            (4, 7, 4.5, "4.5-4.8", 0.0, 1.10, 1.10),  # unchanged: in neither list
        ],
        indicators=[
            (1, "platform_help_rate", 0.004, 4.0, 0.35),
            (1, "cs_response_rate", 0.9, 4.4, 0.10),
            (3, "cs_response_rate", 0.9, 4.7, -0.05),
        ],
    )
    changes = shop_changes(old, new)
    drivers = indicator_drivers(old, new, changes)
    gains, losses = (frame.collect() for frame in top_movers(changes, drivers, n=5))
    assert gains["shop_id"].to_list() == [3]
    assert losses["shop_id"].to_list() == [1, 2]
    worst = losses.row(0, named=True)
    assert worst["target_weight_change"] == pytest.approx(-0.15)
    assert worst["weight_change"] == pytest.approx(-0.10)
    assert [(d["indicator"], round(d["effect"], 9)) for d in worst["drivers"]] == [
        ("platform_help_rate", -0.25),
        ("cs_response_rate", -0.05),
    ]
    assert [
        (d["indicator"], round(d["effect"], 9)) for d in losses.row(1, named=True)["drivers"]
    ] == [(BONUS_DRIVER, -0.05)]
    assert top_movers(changes, drivers, n=1)[1].collect()["shop_id"].to_list() == [1]
