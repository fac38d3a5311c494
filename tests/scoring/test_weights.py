"""Traffic weights and privileges (SCORING.md 9, reading 12.17)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from scoring.contract import PREVIOUS_WEIGHTS_SCHEMA
from scoring.weights import item_traffic_weights, shop_traffic_weights
from scoring.window import partition_cutoff
from tests.builders import day_inputs, default_rules, picked_up_on_time, score

from .support import HOUR, many

# shop_weight_knots: (3.0, 0.6) (4.0, 0.85) (4.4, 1.0) (4.8, 1.3) (5.0, 1.5)


def shop_weights(scores: dict[int, float | None], previous: dict[int, float], rules=None):
    shops = pl.LazyFrame(
        {"shop_id": list(scores), "score": list(scores.values())},
        schema={"shop_id": pl.Int64, "score": pl.Float64},
    )
    prev = pl.LazyFrame(
        {"shop_id": list(previous), "weight": list(previous.values())},
        schema=PREVIOUS_WEIGHTS_SCHEMA,
    )
    frame = shop_traffic_weights(shops, prev, rules or default_rules()).collect()
    return {row["shop_id"]: row for row in frame.to_dicts()}


def test_target_weight_from_the_knots():
    got = shop_weights({1: 3.0, 2: 4.2, 3: 4.4, 4: 4.795, 5: 5.0, 6: None}, {})
    assert {s: r["target_weight"] for s, r in got.items()} == pytest.approx(
        {
            1: 0.6,
            2: 0.85 + 0.15 * 0.2 / 0.4,  # 0.925
            3: 1.0,
            4: 1.0 + 0.3 * 0.395 / 0.4,  # 1.29625
            5: 1.5,
            6: 1.0,  # unscored: neutral
        },
        abs=1e-9,
    )
    # no D-1 weight: weight = target
    assert all(r["weight"] == r["target_weight"] for r in got.values())


def test_weight_is_clamped_to_10_percent_of_the_previous_weight():
    got = shop_weights(
        {1: 4.795, 2: 3.0, 3: 5.0, 4: 4.795, 5: None, 6: None, 7: None, 8: 4.4},
        {1: 1.0, 2: 0.8, 3: 1.4, 4: 1.2, 5: 0.8, 6: 1.2, 7: 1.0, 99: 2.0},
    )
    assert {s: r["weight"] for s, r in got.items()} == pytest.approx(
        {
            1: 1.1,  # target 1.29625, at most 1.0 * 1.1
            2: 0.72,  # target 0.6, at least 0.8 * 0.9
            3: 1.5,  # target 1.5 inside [1.26, 1.54]
            4: 1.29625,  # inside [1.08, 1.32]
            5: 0.88,  # unscored: target 1.0, still clamped to 0.8 * 1.1 (12.17)
            6: 1.08,  # unscored: target 1.0, at least 1.2 * 0.9
            7: 1.0,
            8: 1.0,  # absent on D-1: no clamp (shop 99 is not scored today: no row)
        },
        abs=1e-9,
    )


def test_max_daily_change_comes_from_the_rules():
    got = shop_weights({1: 4.795}, {1: 1.0}, default_rules(max_daily_change=0.2))
    assert got[1]["weight"] == pytest.approx(1.2, abs=1e-9)


@pytest.mark.parametrize(
    ("value", "tier", "eligible"),
    [
        (5.0, "autonomous", True),
        (4.8, "autonomous", True),
        (4.799999999, "negotiate_first", True),
        (4.5, "negotiate_first", True),
        (4.499999999, "standard", True),
        (4.2, "standard", True),
        (4.199999999, "standard", False),
        (3.0, "standard", False),
        (None, "standard", False),
    ],
)
def test_refund_only_tier_and_campaign_eligibility(value, tier, eligible):
    got = shop_weights({1: value}, {})[1]
    assert (got["refund_only_tier"], got["campaign_eligible"]) == (tier, eligible)


def recent_orders(day: dt.date, n: int, bad: int) -> list[dict]:
    """n orders paid in the last hour of `day`, all rated, `bad` of them 1 (the rest 5).

    With 250 orders and 6 bad the score is 4.795 (see test_shop_score): product 4.59 and
    service 5.0 at half weight each, logistics not assessed.
    """
    paid = partition_cutoff(day, "Asia/Shanghai") - HOUR
    return many(bad, 1, review_rating=1, paid_at=paid) + many(
        n - bad, 1 + bad, review_rating=5, paid_at=paid
    )


def test_weights_move_at_most_10_percent_a_day_from_the_published_d_minus_1():
    # day 1: 20 orders -> unscored -> 1.0. Days 2-4: score 4.795 -> target 1.29625:
    # 1.0 * 1.1 = 1.1, then 1.1 * 1.1 = 1.21, then min(1.21 * 1.1, 1.29625) = 1.29625
    days = [dt.date(2026, 3, 17) + dt.timedelta(days=i) for i in range(4)]
    previous, weights = None, []
    for i, day in enumerate(days):
        orders = recent_orders(day, 20, 0) if i == 0 else recent_orders(day, 250, 6)
        tables = score(day_inputs(orders=orders, previous_weights=previous), run_date=day)
        previous = tables["shop_traffic_weights"]
        weights.append(previous.row(0, named=True))
    assert weights[0]["target_weight"] == 1.0
    assert weights[1]["target_weight"] == pytest.approx(1.29625, abs=1e-9)
    assert [w["weight"] for w in weights] == pytest.approx([1.0, 1.1, 1.21, 1.29625], abs=1e-9)
    assert [w["refund_only_tier"] for w in weights] == ["standard"] + ["negotiate_first"] * 3
    assert [w["campaign_eligible"] for w in weights] == [False, True, True, True]


# ---------------------------------------------------------------- items
# item_weight_knots: (0, 0.5) (60, 0.9) (80, 1.0) (95, 1.2) (100, 1.25)


def test_item_weights_from_pxi():
    pxi = [None, 0.0, 30.0, 59.999, 60.0, 70.0, 80.0, 95.0, 100.0]
    items = pl.LazyFrame(
        {"item_id": list(range(1, 10)), "shop_id": [1] * 9, "pxi": pxi},
        schema={"item_id": pl.Int64, "shop_id": pl.Int64, "pxi": pl.Float64},
    )
    got = item_traffic_weights(items, default_rules()).collect()
    assert got["weight"].to_list() == pytest.approx(
        [1.0, 0.5, 0.5 + 0.4 * 30 / 60, 0.5 + 0.4 * 59.999 / 60, 0.9, 0.95, 1.0, 1.2, 1.25],
        abs=1e-9,
    )
    # an item with null pxi is not eligible (12.17); eligible from 60
    assert got["campaign_eligible"].to_list() == [False, False, False, False] + [True] * 5


def test_item_weights_end_to_end():
    # item 100: 10 orders, 1 rated 1 -> prior 1/10 -> smoothed 0.1 -> pxi 46.666..
    #   -> weight 0.5 + 0.4 * 46.666../60 = 0.81111..; not eligible
    # item 200: 3 orders (unscored) -> weight 1.0, not eligible
    orders = many(1, 1, review_rating=1) + many(9, 2) + many(3, 20, item_id=200, category_id=6)
    tables = score(day_inputs(orders=orders, logistics=picked_up_on_time(orders)))  # none late
    got = {r["item_id"]: r for r in tables["item_traffic_weights"].to_dicts()}
    pxi = 60 - 30 * (0.1 - 0.06) / 0.09
    assert got[100]["weight"] == pytest.approx(0.5 + 0.4 * pxi / 60, abs=1e-9)
    assert (got[100]["campaign_eligible"], got[100]["shop_id"]) == (False, 1)
    assert (got[200]["weight"], got[200]["campaign_eligible"]) == (1.0, False)
