"""Piecewise-linear knots (SCORING.md 5.3, readings 12.10 and 12.12)."""

from __future__ import annotations

from itertools import pairwise

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.interp import interp
from tests.builders import PAID, day_inputs, default_rules, indicator_row, score, ts

from .support import HOUR, many

PICKUP = ((0.80, 3.0), (0.90, 4.0), (0.95, 4.5), (0.98, 4.8), (1.0, 5.0))  # higher is better
QUALITY = ((0.0, 5.0), (0.005, 4.8), (0.015, 4.5), (0.03, 4.0), (0.08, 3.0))  # lower is better


def interp_values(xs: list[float | None], knots) -> list[float | None]:
    frame = pl.DataFrame({"x": xs}, schema={"x": pl.Float64})
    return frame.select(y=interp(pl.col("x"), knots))["y"].to_list()


def test_exact_at_every_knot_of_every_default_knot_list():
    # 12.12: at a knot the score is exactly that knot's score (no 4.7999999)
    rules = default_rules()
    knot_lists = [rule.knots for rule in rules.default.indicators.values()]
    knot_lists += [rules.categories[1001].indicators["pickup_on_time_rate"].knots]
    knot_lists += [rules.pxi_knots, rules.shop_weight_knots, rules.item_weight_knots]
    for knots in knot_lists:
        xs = [x for x, _ in knots]
        assert interp_values(xs, knots) == [y for _, y in knots]


def test_linear_between_knots():
    # 0.85: 3.0 + (4.0-3.0)*(0.85-0.80)/(0.90-0.80) = 3.5
    # 0.965: 4.5 + (4.8-4.5)*(0.965-0.95)/(0.98-0.95) = 4.65
    # 0.99: 4.8 + 0.2*0.5 = 4.9
    assert interp_values([0.85, 0.965, 0.99], PICKUP) == pytest.approx([3.5, 4.65, 4.9], abs=1e-9)
    # lower is better: 0.01: 4.8 + (4.5-4.8)*(0.01-0.005)/(0.015-0.005) = 4.65
    # 0.055: 4.0 + (3.0-4.0)*(0.055-0.03)/(0.08-0.03) = 3.5
    assert interp_values([0.01, 0.055], QUALITY) == pytest.approx([4.65, 3.5], abs=1e-9)


def test_flat_beyond_both_ends_and_null_stays_null():
    assert interp_values([0.0, 0.5, 0.7999, 1.0001, 7.0, None], PICKUP) == [
        3.0,
        3.0,
        3.0,
        5.0,
        5.0,
        None,
    ]
    assert interp_values([-1.0, 0.08, 0.5, None], QUALITY) == [5.0, 3.0, 3.0, None]


def test_a_single_knot_is_flat_everywhere():
    assert interp_values([0.0, 0.5, 1.0], ((0.5, 4.0),)) == [4.0, 4.0, 4.0]


@given(st.floats(min_value=0.0, max_value=1.2, allow_nan=False))
def test_between_neighbouring_knots_the_score_is_the_straight_line(x):
    (y,) = interp_values([x], PICKUP)
    if x <= 0.80:
        assert y == 3.0
    elif x >= 1.0:
        assert y == 5.0
    else:
        (x0, y0), (x1, y1) = next((a, b) for a, b in pairwise(PICKUP) if a[0] <= x < b[0])
        assert y == pytest.approx(y0 + (y1 - y0) * (x - x0) / (x1 - x0), abs=1e-9)
        assert min(y0, y1) <= y <= max(y0, y1)


@given(
    st.floats(min_value=-0.1, max_value=0.2, allow_nan=False),
    st.floats(min_value=-0.1, max_value=0.2, allow_nan=False),
)
def test_lower_is_better_knots_give_a_non_increasing_score(a, b):
    low, high = sorted([a, b])
    y_low, y_high = interp_values([low, high], QUALITY)
    assert y_low >= y_high
    assert 3.0 <= y_high <= y_low <= 5.0


def _pickup_orders(shop_id: int, first_id: int, categories: list[int], late: int) -> tuple:
    """Orders of one shop, all picked up; the first `late` ones after their 48 h deadline."""
    orders, events = [], []
    for i, category in enumerate(categories):
        order_id = first_id + i
        orders.append({"order_id": order_id, "shop_id": shop_id, "category_id": category})
        pickup = PAID + (49 if i < late else 24) * HOUR
        events.append(
            {
                "event_id": order_id,
                "order_id": order_id,
                "event_type": "picked_up",
                "event_at": pickup,
            }
        )
    return orders, events


def test_the_1001_override_applies_by_main_category_only():
    # Shop 1: 10 orders, all category 1001 -> main 1001. Shop 2: 6 orders of category 5 and 4 of
    # 1001 at equal amounts -> main 5 (6000 > 4000). Each: 9 of 10 picked up on time.
    # Each is alone in its main category, so prior = 9/10 and smoothed = (9 + 20*0.9)/(10+20) = 0.9.
    # Shop 1 (1001 knots): 3.0 + (4.0-3.0)*(0.9-0.85)/(0.93-0.85) = 3.625
    # Shop 2 (default knots): 0.9 is a knot -> exactly 4.0
    o1, e1 = _pickup_orders(1, 1, [1001] * 10, late=1)
    o2, e2 = _pickup_orders(2, 101, [5] * 6 + [1001] * 4, late=1)
    tables = score(day_inputs(orders=o1 + o2, logistics=e1 + e2))

    shops = {r["shop_id"]: r for r in tables["shop_scores"].to_dicts()}
    assert (shops[1]["main_category_id"], shops[2]["main_category_id"]) == (1001, 5)

    fresh = indicator_row(tables, 1, "pickup_on_time_rate")
    assert (fresh["numerator"], fresh["denominator"]) == (9.0, 10)
    assert fresh["smoothed_value"] == pytest.approx(0.9, abs=1e-9)
    assert fresh["indicator_score"] == pytest.approx(3.625, abs=1e-9)
    # weight kept at 0.3; assessed logistics: pickup 0.3 + track 0.2 (nothing delivered)
    # -> effective 0.3 * 1.0 / 0.5 = 0.6
    assert fresh["effective_weight"] == pytest.approx(0.6, abs=1e-9)

    other = indicator_row(tables, 2, "pickup_on_time_rate")
    assert other["smoothed_value"] == pytest.approx(0.9, abs=1e-9)
    assert other["indicator_score"] == pytest.approx(4.0, abs=1e-9)


def test_the_override_changes_only_the_named_indicator_of_a_1001_shop():
    # Shop 1 (main 1001), all orders picked up on time and none delivered: the other
    # indicators use the default knots. track_anomaly_rate: pickups long before the cutoff
    # and nothing after -> every order stalls -> 1.0 -> default knots flat at 3.0.
    orders = many(3, 1, category_id=1001)
    events = [
        {
            "event_id": o["order_id"],
            "order_id": o["order_id"],
            "event_type": "picked_up",
            "event_at": ts(2026, 3, 2),
        }
        for o in orders
    ]
    tables = score(day_inputs(orders=orders, logistics=events))
    assert indicator_row(tables, 1, "pickup_on_time_rate")["indicator_score"] == 5.0
    assert indicator_row(tables, 1, "track_anomaly_rate")["indicator_score"] == 3.0
