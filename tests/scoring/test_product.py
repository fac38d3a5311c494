"""Product experience score, PXI (SCORING.md 7, reading 12.15)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.builders import PAID, day_inputs, default_rules, picked_up_on_time, score

from .support import CUTOFF, many


def pxi_inputs():
    """Category 5: items 100 (10 orders), 200 (10 orders), 300 (4 orders). Category 6: item 400.

    Every order is picked up an hour after payment, so none is a late shipment (7 (c)).
    Problem orders (a current, normal refund of reason quality / not_as_described / damaged
    requested before the cutoff, or review_rating <= 2):
      item 100: order 1 (quality; the refund names another shop and item: the order decides)
                -> 1. Not problems: changed_mind, rating 3, abnormal damaged, late_delivery.
      item 200: order 11 (damaged), 12 (rated 2), 13 (not_as_described and rated 1: once)
                -> 3. Not a problem: wrong_item (order 14).
      item 300: none. item 400: none (its quality refund is requested at the cutoff).
    """
    orders = (
        many(10, 1, item_id=100)
        + many(10, 11, item_id=200)
        + many(4, 21, item_id=300)
        + many(5, 31, item_id=400, shop_id=2, category_id=6)
    )
    ratings = {3: 3, 12: 2, 13: 1}
    for order in orders:
        order["review_rating"] = ratings.get(order["order_id"])
    refunds = [
        {"order_id": 1, "reason": "quality", "shop_id": 7, "item_id": 999},
        {"order_id": 2, "reason": "changed_mind"},
        {"order_id": 4, "reason": "damaged", "is_abnormal": True},
        {"order_id": 5, "reason": "late_delivery"},
        {"order_id": 11, "reason": "damaged"},
        {"order_id": 13, "reason": "not_as_described"},
        {"order_id": 14, "reason": "wrong_item"},
        {"order_id": 31, "shop_id": 2, "reason": "quality", "requested_at": CUTOFF},
    ]
    return day_inputs(orders=orders, refunds=refunds, logistics=picked_up_on_time(orders))


def items(tables) -> dict[int, dict]:
    return {row["item_id"]: row for row in tables["item_scores"].to_dicts()}


def test_pxi_with_category_prior_and_k_item():
    got = items(score(pxi_inputs()))
    assert {i: (r["paid_orders"], r["problem_orders"]) for i, r in got.items()} == {
        100: (10, 1),
        200: (10, 3),
        300: (4, 0),
        400: (5, 0),
    }
    # prior (category 5) = (1 + 3 + 0) / (10 + 10 + 4) = 1/6; k_item = 10
    # item 100: (1 + 10/6) / (10 + 10) = 2/15 -> 60 + (30-60)*(2/15 - 0.06)/(0.15-0.06) = 35.555..
    assert got[100]["smoothed_rate"] == pytest.approx(2 / 15, abs=1e-12)
    assert got[100]["pxi"] == pytest.approx(60 - 30 * (2 / 15 - 0.06) / 0.09, abs=1e-9)
    # item 200: (3 + 10/6) / 20 = 7/30 -> 30 + (0-30)*(7/30 - 0.15)/(0.30-0.15) = 13.333..
    assert got[200]["smoothed_rate"] == pytest.approx(7 / 30, abs=1e-12)
    assert got[200]["pxi"] == pytest.approx(30 - 30 * (7 / 30 - 0.15) / 0.15, abs=1e-9)
    # item 300: 4 < min_item_orders (5): smoothed_rate still written (12.15), no pxi
    assert got[300]["smoothed_rate"] == pytest.approx((10 / 6) / 14, abs=1e-12)
    assert (got[300]["pxi"], got[300]["status"]) == (None, "insufficient_orders")
    # item 400: category 6 prior 0 -> smoothed 0 -> 100 (exactly 5 orders: scored)
    assert (got[400]["smoothed_rate"], got[400]["pxi"], got[400]["status"]) == (
        0.0,
        100.0,
        "scored",
    )
    assert (got[100]["status"], got[100]["shop_id"], got[100]["category_id"]) == ("scored", 1, 5)


def test_category_percentile_among_scored_items_of_the_category():
    # category 5: 100 (35.6) beats 200 (13.3): 1/1 and 0/1; 300 unscored; 400 alone in 6
    got = items(score(pxi_inputs()))
    assert {i: r["category_percentile"] for i, r in got.items()} == {
        100: 1.0,
        200: 0.0,
        300: None,
        400: None,
    }


def test_k_item_zero_scores_the_raw_problem_rate():
    # item 100: 1/10 = 0.1 -> 60 - 30*(0.1-0.06)/0.09 = 46.666..; item 200: 3/10 = 0.3 -> 0
    got = items(score(pxi_inputs(), rules=default_rules(k_item=0)))
    assert got[100]["smoothed_rate"] == pytest.approx(0.1, abs=1e-12)
    assert got[100]["pxi"] == pytest.approx(60 - 30 * 0.04 / 0.09, abs=1e-9)
    assert got[200]["pxi"] == pytest.approx(0.0, abs=1e-9)


def test_min_item_orders_from_the_rules():
    # with min_item_orders = 4, item 300 is scored: (10/6)/14 = 5/42
    #   -> 60 - 30*(5/42 - 0.06)/0.09 = 40.317..; percentiles: 300 beats both (2/2),
    #   100 beats 200 (1/2), 200 none (0/2)
    got = items(score(pxi_inputs(), rules=default_rules(min_item_orders=4)))
    assert got[300]["status"] == "scored"
    assert got[300]["pxi"] == pytest.approx(60 - 30 * (5 / 42 - 0.06) / 0.09, abs=1e-9)
    assert {i: got[i]["category_percentile"] for i in (100, 200, 300)} == pytest.approx(
        {100: 0.5, 200: 0.0, 300: 1.0}, abs=1e-12
    )


def test_an_item_sold_under_two_shops_and_categories_takes_the_smallest():
    # 12.15 (inconsistent data): shop and category are the smallest seen on its orders of V
    orders = [
        {"order_id": 1, "item_id": 500, "shop_id": 4, "category_id": 9},
        {"order_id": 2, "item_id": 500, "shop_id": 3, "category_id": 8},
    ]
    row = items(score(day_inputs(orders=orders)))[500]
    assert (row["shop_id"], row["category_id"], row["paid_orders"]) == (3, 8, 2)


def test_pxi_at_a_knot_is_exact():
    # k_item = 0, 3 problems of 50 orders = 0.06 -> the knot (0.06, 60) -> exactly 60.0
    orders = many(50, 1)
    for order in orders[:3]:
        order["review_rating"] = 1
    inputs = day_inputs(orders=orders, logistics=picked_up_on_time(orders))
    row = items(score(inputs, rules=default_rules(k_item=0)))[100]
    assert row["pxi"] == 60.0


def test_a_late_shipment_is_a_problem_order():
    # 7 (c), v1.1: due for pickup and not picked up by deadline(o) = paid_at + 48 h.
    # order 1: picked up at 47 h (on time); 2: at 49 h (late); 3: never picked up, the deadline
    # passed (late); 4: never picked up but cancelled before the deadline (not due: not late);
    # 5: never picked up, promised to ship after the cutoff (not due yet); 6: late and rated 1
    # (one problem order, not two)
    hour = dt.timedelta(hours=1)
    orders = [
        {"order_id": 1},
        {"order_id": 2},
        {"order_id": 3},
        {"order_id": 4, "cancelled_at": PAID + 10 * hour},
        {"order_id": 5, "promised_ship_at": CUTOFF + hour},
        {"order_id": 6, "review_rating": 1},
    ]
    events = picked_up_on_time(orders[:1], after=47 * hour) + picked_up_on_time(
        [orders[1], orders[5]], after=49 * hour
    )
    tables = score(day_inputs(orders=orders, logistics=events), rules=default_rules(k_item=0))
    row = items(tables)[100]
    assert (row["paid_orders"], row["problem_orders"]) == (6, 3)  # orders 2, 3, 6
    pickup = tables["shop_indicators"].filter(pl.col("indicator") == "pickup_on_time_rate")
    # the shop's indicator counts the same orders: due 1, 2, 3, 6; on time 1
    assert (pickup["numerator"][0], pickup["denominator"][0]) == (1.0, 4)
