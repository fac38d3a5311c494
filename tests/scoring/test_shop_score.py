"""Priors, shrinkage, scores, weights and the shop score (SCORING.md 3, 5, 6; 12.9-12.14)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.shop_score import band, share_strictly_below
from tests.builders import PAID, day_inputs, default_rules, indicator_row, score, ts
from tests.hypothesis_budget import examples

from .support import CUTOFF, HOUR, local, many, no_shrinkage, rules_with

RECENT = CUTOFF - HOUR  # paid an hour before the cutoff: no pickup is due yet, nothing delivered


def rated(shop_id: int, first_id: int, good: int, bad: int, **fields) -> list[dict]:
    """Orders of a shop rated 5 (`good`) and 1 (`bad`), paid at RECENT unless told otherwise."""
    common = {"shop_id": shop_id, "paid_at": RECENT, **fields}
    return many(bad, first_id, review_rating=1, **common) + many(
        good, first_id + bad, review_rating=5, **common
    )


def shop_rows(tables: dict[str, pl.DataFrame]) -> dict[int, dict]:
    return {row["shop_id"]: row for row in tables["shop_scores"].to_dicts()}


# ---------------------------------------------------------------- main category


def test_main_category_is_the_greatest_amount_with_ties_to_the_smallest_id():
    orders = [
        # shop 1: category 7 = 300 + 300 = 600, category 9 = 600, category 3 = 500 -> 7 (tie)
        {"order_id": 1, "shop_id": 1, "category_id": 9, "amount_cents": 600},
        {"order_id": 2, "shop_id": 1, "category_id": 7, "amount_cents": 300},
        {"order_id": 3, "shop_id": 1, "category_id": 3, "amount_cents": 500},
        {"order_id": 4, "shop_id": 1, "category_id": 7, "amount_cents": 300},
        # shop 2: three orders of category 8 (300 in all) lose to one of category 4 (500)
        *many(3, 10, shop_id=2, category_id=8, amount_cents=100),
        {"order_id": 20, "shop_id": 2, "category_id": 4, "amount_cents": 500},
        # shop 4: a cancelled order still counts (12.3); an abnormal one does not
        {"order_id": 30, "shop_id": 4, "category_id": 12, "amount_cents": 1000,
         "cancelled_at": PAID + HOUR},
        {"order_id": 31, "shop_id": 4, "category_id": 11, "amount_cents": 900},
        {"order_id": 32, "shop_id": 4, "category_id": 13, "amount_cents": 5000,
         "is_abnormal": True},
    ]  # fmt: skip
    sessions = [{"shop_id": 3}]  # shop 3: no order in V -> no main category
    shops = shop_rows(score(day_inputs(orders=orders, cs_sessions=sessions)))
    assert {s: r["main_category_id"] for s, r in shops.items()} == {1: 7, 2: 4, 3: None, 4: 12}


# ---------------------------------------------------------------- prior and shrinkage


def test_prior_per_main_category_with_fallback_to_all_shops():
    # negative_review_rate, k = 20:
    #   shop 1 (cat 5): 1 of 20 rated negative; shop 2 (cat 5): 0 of 30; shop 3 (cat 6): 3 of 50
    #   shop 4 (cat 7): 5 orders, none rated -> category 7 has denominator 0 -> all-shops prior
    #   shop 5: only a session -> no main category -> all-shops prior
    # prior cat 5 = 1/50 = 0.02; cat 6 = 3/50 = 0.06; all shops = 4/100 = 0.04
    orders = (
        rated(1, 1, good=19, bad=1)
        + rated(2, 101, good=30, bad=0)
        + rated(3, 201, good=47, bad=3, category_id=6)
        + many(5, 301, shop_id=4, category_id=7, paid_at=RECENT)
    )
    tables = score(day_inputs(orders=orders, cs_sessions=[{"shop_id": 5}]))
    row = {s: indicator_row(tables, s, "negative_review_rate") for s in range(1, 6)}

    assert [row[s]["prior"] for s in range(1, 6)] == pytest.approx(
        [0.02, 0.02, 0.06, 0.04, 0.04], abs=1e-12
    )
    assert row[1]["raw_value"] == 0.05 and row[4]["raw_value"] is None
    # shop 1: (1 + 20*0.02) / (20 + 20) = 0.035 -> 4.5 + (4.0-4.5)*(0.035-0.03)/0.03 = 4.41666..
    assert row[1]["smoothed_value"] == pytest.approx(0.035, abs=1e-12)
    assert row[1]["indicator_score"] == pytest.approx(4.5 - 0.5 / 6, abs=1e-9)
    # shop 2: (0 + 0.4) / 50 = 0.008 -> 5.0 + (4.8-5.0)*0.008/0.01 = 4.84
    assert row[2]["smoothed_value"] == pytest.approx(0.008, abs=1e-12)
    assert row[2]["indicator_score"] == pytest.approx(4.84, abs=1e-9)
    # shop 3: (3 + 20*0.06) / 70 = 0.06 -> the knot, 4.0
    assert row[3]["smoothed_value"] == pytest.approx(0.06, abs=1e-12)
    assert row[3]["indicator_score"] == pytest.approx(4.0, abs=1e-9)
    # shops 4 and 5: denominator 0 -> smoothed = prior = 0.04 -> 4.5 - 0.5*(0.01/0.03) = 4.3333..
    for shop in (4, 5):
        assert row[shop]["smoothed_value"] == pytest.approx(0.04, abs=1e-12)
        assert row[shop]["indicator_score"] == pytest.approx(4.5 - 0.5 / 3, abs=1e-9)
        assert row[shop]["assessed"] is True


@pytest.mark.parametrize(
    ("k", "smoothed_1", "smoothed_2"),
    [
        # prior (cat 5) = 2/40 = 0.05
        # k = 20: (2 + 1)/(10 + 20) = 0.1 and (0 + 1)/(30 + 20) = 0.02
        pytest.param(20, 0.1, 0.02, id="default-k"),
        # k = 5: (2 + 0.25)/15 = 0.15 and 0.25/35
        pytest.param(5, 0.15, 0.25 / 35, id="k-5"),
        # k = 0: the raw values 0.2 and 0
        pytest.param(0, 0.2, 0.0, id="k-0"),
    ],
)
def test_shrinkage_toward_the_prior_with_k(k, smoothed_1, smoothed_2):
    def set_k(data):
        data["indicators"]["negative_review_rate"]["k"] = k

    orders = rated(1, 1, good=8, bad=2) + rated(2, 101, good=30, bad=0)
    tables = score(day_inputs(orders=orders), rules=rules_with(set_k))
    assert indicator_row(tables, 1, "negative_review_rate")["smoothed_value"] == pytest.approx(
        smoothed_1, abs=1e-12
    )
    assert indicator_row(tables, 2, "negative_review_rate")["smoothed_value"] == pytest.approx(
        smoothed_2, abs=1e-12
    )


def test_category_override_of_k_and_dimension_weights_applies_by_main_category():
    # 12.10. Category 6 overrides negative_review_rate.k = 0 and two dimension weights.
    # Shops 1, 2 (cat 5) and 3, 4 (cat 6): 3 of 30 and 0 of 30 negative in each category,
    # orders paid recently (logistics is not assessed at all, so its weight is spread).
    def override(data):
        data["categories"]["6"] = {
            "indicators": {"negative_review_rate": {"k": 0}},
            "dimension_weights": {"product": 0.5, "logistics": 0.15},  # service stays 0.35
        }

    orders = (
        rated(1, 1, good=27, bad=3)
        + rated(2, 101, good=30, bad=0)
        + rated(3, 201, good=27, bad=3, category_id=6)
        + rated(4, 301, good=30, bad=0, category_id=6)
    )
    tables = score(day_inputs(orders=orders), rules=rules_with(override))
    shops = shop_rows(tables)

    # shop 1 (defaults): prior 3/60 = 0.05, smoothed (3 + 1)/50 = 0.08
    #   -> 4.0 - (0.08-0.06)/0.09 = 3.77777..; service: platform help 0 -> 5.0
    #   score = (0.35*3.7777.. + 0.35*5.0) / 0.70 = 4.38888..
    one = indicator_row(tables, 1, "negative_review_rate")
    assert one["smoothed_value"] == pytest.approx(0.08, abs=1e-12)
    assert shops[1]["score"] == pytest.approx((3.0 + 7 / 9 + 5.0) / 2, abs=1e-9)
    # shop 3 (override): k = 0 -> smoothed = raw 0.1 -> 4.0 - 0.04/0.09 = 3.55555..
    #   score = (0.5*3.5555.. + 0.35*5.0) / (0.5 + 0.35) = 4.15032..
    three = indicator_row(tables, 3, "negative_review_rate")
    assert three["prior"] == pytest.approx(0.05, abs=1e-12)
    assert three["smoothed_value"] == pytest.approx(0.1, abs=1e-12)
    assert three["indicator_score"] == pytest.approx(4.0 - 4 / 9, abs=1e-9)
    assert shops[3]["score"] == pytest.approx((0.5 * (4.0 - 4 / 9) + 0.35 * 5.0) / 0.85, abs=1e-9)


# ---------------------------------------------------------------- not assessed, weight spreading


def test_an_indicator_with_no_denominator_anywhere_is_not_assessed():
    # Shop 1: one order picked up, delivered 24 h later at the door; no promise anywhere.
    # Shop 2: one order, nothing happened (pickup missed). No reviews, sessions or refunds.
    events = [
        {"order_id": 1, "event_type": "picked_up", "event_at": ts(2026, 3, 2)},
        {"order_id": 1, "event_type": "delivered", "event_at": ts(2026, 3, 3),
         "door_delivery": True},
    ]  # fmt: skip
    orders = [{"order_id": 1, "shop_id": 1}, {"order_id": 2, "shop_id": 2}]
    tables = score(day_inputs(orders=orders, logistics=events))

    not_assessed = [
        "delivery_promise_rate",
        "negative_review_rate",
        "cs_response_rate",
        "cs_satisfaction_rate",
        "refund_refusal_rate",
        "refund_handling_hours",
    ]
    for shop in (1, 2):
        for indicator in not_assessed:
            row = indicator_row(tables, shop, indicator)
            assert (row["numerator"], row["denominator"], row["raw_value"]) == (0.0, 0, None)
            assert (row["prior"], row["smoothed_value"], row["indicator_score"]) == (None,) * 3
            assert (row["points_lost"], row["effective_weight"], row["assessed"]) == (
                None,
                0.0,
                False,
            )

    # Assessed for everyone even where the shop's own denominator is 0 (12.9): shop 2 has no
    # delivered order, so door_delivery_rate gets the prior, shop 1's 1/1.
    door = indicator_row(tables, 2, "door_delivery_rate")
    assert (door["raw_value"], door["prior"], door["smoothed_value"]) == (None, 1.0, 1.0)
    assert (door["indicator_score"], door["assessed"]) == (5.0, True)

    # 12.11: logistics assessed weights 0.3 + 0.2 + 0.15 + 0.1 = 0.75 (promise 0.25 is not)
    #   effective = weight * 1.0 / 0.75
    # product: only quality_refund_rate (0.5) -> 1.0; service: only platform_help_rate -> 1.0
    expected = {
        "pickup_on_time_rate": 0.3 / 0.75,
        "track_anomaly_rate": 0.2 / 0.75,
        "delivery_hours": 0.15 / 0.75,
        "door_delivery_rate": 0.1 / 0.75,
        "delivery_promise_rate": 0.0,
        "quality_refund_rate": 1.0,
        "negative_review_rate": 0.0,
        "platform_help_rate": 1.0,
        "cs_response_rate": 0.0,
    }
    for shop in (1, 2):
        for indicator, weight in expected.items():
            got = indicator_row(tables, shop, indicator)["effective_weight"]
            assert got == pytest.approx(weight, abs=1e-9), (shop, indicator)


def test_a_dimension_with_nothing_assessed_gives_its_weight_to_the_others():
    # 250 orders paid an hour before the cutoff: no logistics indicator has a denominator.
    # 6 of 250 rated 1, the rest 5. No sessions or refunds.
    # product: negative_review_rate only: 6/250 = 0.024 (alone: prior 0.024, smoothed 0.024)
    #   -> 4.8 + (4.5-4.8)*(0.024-0.01)/(0.03-0.01) = 4.59
    # service: platform_help_rate 0/250 -> 5.0
    # logistics' 0.30 is spread: product 0.35/0.70 = 0.5, service 0.5
    # score = 0.5*4.59 + 0.5*5.0 = 4.795
    tables = score(day_inputs(orders=rated(1, 1, good=244, bad=6)))
    shop = shop_rows(tables)[1]
    assert shop["status"] == "scored"
    assert shop["product_score"] == pytest.approx(4.59, abs=1e-9)
    assert shop["service_score"] == pytest.approx(5.0, abs=1e-9)
    assert shop["score"] == pytest.approx(4.795, abs=1e-9)
    for indicator in ("pickup_on_time_rate", "track_anomaly_rate", "door_delivery_rate"):
        assert indicator_row(tables, 1, indicator)["assessed"] is False
    # points lost: 0.5 * 1.0 * (5 - 4.59) = 0.205; 0.205 + 4.795 - 0 = 5
    lost = indicator_row(tables, 1, "negative_review_rate")["points_lost"]
    assert lost == pytest.approx(0.205, abs=1e-9)


# ---------------------------------------------------------------- the full shop score


def full_shop() -> dict:
    """30 orders touching all twelve indicators; see the arithmetic in the test below."""
    orders, events = [], []
    for i in range(1, 31):
        orders.append(
            {
                "order_id": i,
                "promised_delivery_at": PAID + 72 * HOUR,
                "review_rating": (2 if i == 1 else 5) if i <= 20 else None,
            }
        )
        events += [
            {"order_id": i, "event_type": "picked_up", "event_at": PAID + 24 * HOUR},
            {"order_id": i, "event_type": "delivered", "event_at": PAID + 48 * HOUR,
             "door_delivery": i <= 27},
        ]  # fmt: skip
    refunds = [
        {
            "order_id": 30,
            "reason": "quality",
            "requested_at": ts(2026, 3, 5),
            "seller_decision": "agreed",
            "decided_at": ts(2026, 3, 5, 2),
        }
    ]
    sessions = [
        {"started_at": local(2026, 3, 10, 10), "first_response_seconds": 60,
         "satisfaction": 3 if i == 0 else 5}
        for i in range(20)
    ]  # fmt: skip
    return {"orders": orders, "logistics": events, "refunds": refunds, "cs_sessions": sessions}


# indicator -> (dimension weight, weight, indicator score); one shop, so smoothed == raw
FULL_SHOP_SCORES = {
    # 1/30 delivered orders with a quality refund: 4.0 - (1/30 - 0.03)/0.05 = 3.9333..
    "quality_refund_rate": (0.35, 0.5, 4.0 - (1 / 30 - 0.03) / 0.05),
    # 1/20 rated negative: 4.5 - 0.5*(0.05 - 0.03)/0.03 = 4.1666..
    "negative_review_rate": (0.35, 0.5, 4.5 - 0.5 * 0.02 / 0.03),
    "pickup_on_time_rate": (0.30, 0.3, 5.0),  # 30/30 picked up at +24 h
    "delivery_promise_rate": (0.30, 0.25, 5.0),  # 30/30 delivered at +48 h <= +72 h
    "track_anomaly_rate": (0.30, 0.2, 5.0),  # gaps of 24 h only
    "delivery_hours": (0.30, 0.15, 4.8),  # 48 h: a knot
    "door_delivery_rate": (0.30, 0.1, 4.8),  # 27/30 = 0.9: a knot
    "cs_response_rate": (0.35, 0.2, 5.0),  # 20/20 in service hours within 60 s
    "cs_satisfaction_rate": (0.35, 0.2, 4.8),  # 19/20 = 0.95: a knot
    "refund_refusal_rate": (0.35, 0.2, 5.0),  # 0/1
    "platform_help_rate": (0.35, 0.25, 5.0),  # 0/30
    "refund_handling_hours": (0.35, 0.15, 5.0),  # 2 h: a knot
}


def test_full_shop_score_by_hand():
    # product   = 0.5*3.9333.. + 0.5*4.1666.. = 4.05
    # logistics = 0.3*5 + 0.25*5 + 0.2*5 + 0.15*4.8 + 0.1*4.8 = 4.95
    # service   = 0.2*5 + 0.2*4.8 + 0.2*5 + 0.25*5 + 0.15*5 = 4.96
    # score     = 0.35*4.05 + 0.30*4.95 + 0.35*4.96 = 4.6385; no bonus (nothing insured;
    #             delivered 03-03 10:00 local, not before 03-03 00:00 local)
    tables = score(day_inputs(**full_shop()))
    shop = shop_rows(tables)[1]
    assert (shop["valid_orders"], shop["status"], shop["bonus"]) == (30, "scored", 0.0)
    assert shop["product_score"] == pytest.approx(4.05, abs=1e-9)
    assert shop["logistics_score"] == pytest.approx(4.95, abs=1e-9)
    assert shop["service_score"] == pytest.approx(4.96, abs=1e-9)
    assert shop["score"] == pytest.approx(4.6385, abs=1e-9)
    assert shop["score_display"] == 4.6
    assert shop["band"] == "4.5-4.8"
    assert shop["peer_percentile"] is None  # alone in its category

    for indicator, (dim_weight, weight, expected) in FULL_SHOP_SCORES.items():
        row = indicator_row(tables, 1, indicator)
        assert row["assessed"] is True
        assert row["indicator_score"] == pytest.approx(expected, abs=1e-9), indicator
        assert row["effective_weight"] == pytest.approx(weight, abs=1e-9), indicator
        lost = dim_weight * weight * (5.0 - expected)
        assert row["points_lost"] == pytest.approx(lost, abs=1e-9), indicator

    # 6: sum of points lost + score - bonus = 5 (the cap does not bind)
    # 0.18666.. + 0.14583.. + 0.009 + 0.006 + 0.014 = 0.3615; 0.3615 + 4.6385 = 5
    total_lost = tables["shop_indicators"]["points_lost"].sum()
    assert total_lost == pytest.approx(0.3615, abs=1e-9)
    assert total_lost + shop["score"] - shop["bonus"] == pytest.approx(5.0, abs=1e-9)


# ---------------------------------------------------------------- bonus and cap


def test_bonus_items_reach_at_their_thresholds():
    # Shop 1 (cat 5): 30 orders, 24 insured (24/30 = 0.8 >= 0.8); all picked up at +1 h;
    #   6 delivered at +20 h: paid 03-01 10:00 local, delivered 03-02 06:00 local, before
    #   03-03 00:00 local (6/30 = 0.2 >= 0.2); 24 delivered at +60 h (03-03 14:00 local).
    # Shop 2 (cat 6): the same but 23 insured and 5 next-day: no bonus.
    # Shop 3 (cat 7): 10 orders, all insured, unscored: bonus still computed (12.13).
    def shop(shop_id, first, insured, next_day, n=30):
        orders, events = [], []
        for i in range(n):
            order_id = first + i
            orders.append({"order_id": order_id, "shop_id": shop_id, "category_id": 4 + shop_id,
                           "return_insurance": i < insured})  # fmt: skip
            delivered = PAID + (20 if i < next_day else 60) * HOUR
            events += [
                {"order_id": order_id, "event_type": "picked_up", "event_at": PAID + HOUR},
                {"order_id": order_id, "event_type": "delivered", "event_at": delivered,
                 "door_delivery": True},
            ]  # fmt: skip
        return orders, events

    parts = [shop(1, 1, 24, 6), shop(2, 101, 23, 5), shop(3, 201, 10, 0, n=10)]
    orders = [o for p in parts for o in p[0]]
    events = [e for p in parts for e in p[1]]
    shops = shop_rows(score(day_inputs(orders=orders, logistics=events)))
    assert shops[1]["bonus"] == pytest.approx(0.10, abs=1e-12)
    assert shops[2]["bonus"] == 0.0
    assert shops[3]["bonus"] == pytest.approx(0.05, abs=1e-12)
    assert shops[3]["score"] is None
    # shop 1, bonus aside: product (quality refunds 0/30) 5.0; service (help 0/30) 5.0;
    # logistics: pickup 5, track 5 (gaps 19 h / 59 h), door 5, promise not assessed,
    # hours (6*20 + 24*60)/30 = 52 -> 4.8 - 0.3*(52-48)/24 = 4.75
    # -> (0.3*5 + 0.2*5 + 0.15*4.75 + 0.1*5) / 0.75 = 4.95
    # score = 0.35*5 + 0.30*4.95 + 0.35*5 + 0.10 = 5.085 -> capped at 5.0
    assert shops[1]["logistics_score"] == pytest.approx(4.95, abs=1e-9)
    assert shops[1]["score"] == 5.0


def test_the_cap_at_5_and_points_lost_when_it_binds():
    # 30 perfect orders, all insured and delivered next day at the door: every assessed
    # indicator scores 5.0, bonus 0.05 + 0.05 -> min(5.0, 5.0 + 0.1) = 5.0
    orders = many(30, 1, return_insurance=True)
    events = [
        e
        for o in orders
        for e in (
            {"order_id": o["order_id"], "event_type": "picked_up", "event_at": PAID + HOUR},
            {"order_id": o["order_id"], "event_type": "delivered",
             "event_at": PAID + 20 * HOUR, "door_delivery": True},
        )
    ]  # fmt: skip
    tables = score(day_inputs(orders=orders, logistics=events))
    shop = shop_rows(tables)[1]
    assert shop["bonus"] == pytest.approx(0.1, abs=1e-12)
    assert shop["score"] == 5.0
    assert (shop["score_display"], shop["band"]) == (5.0, "4.8+")
    # 12.14: points lost stay as defined (all 0 here); the identity gives 4.9, not 5
    assert tables["shop_indicators"]["points_lost"].sum() == 0.0


# ---------------------------------------------------------------- min_orders, unscored


def test_min_orders_and_what_unscored_shops_still_get():
    # shop 1: 29 orders -> insufficient; shop 2: 29 + 1 cancelled = 30 -> scored;
    # shop 3: 30 orders of which 1 abnormal -> 29 -> insufficient
    orders = (
        many(29, 1, shop_id=1)
        + many(29, 101, shop_id=2, category_id=6)
        + [{"order_id": 130, "shop_id": 2, "category_id": 6, "cancelled_at": PAID + HOUR}]
        + many(29, 201, shop_id=3, category_id=7)
        + [{"order_id": 230, "shop_id": 3, "category_id": 7, "is_abnormal": True}]
    )
    tables = score(day_inputs(orders=orders))
    shops = shop_rows(tables)
    assert {s: (r["valid_orders"], r["status"]) for s, r in shops.items()} == {
        1: (29, "insufficient_orders"),
        2: (30, "scored"),
        3: (29, "insufficient_orders"),
    }
    for s in (1, 3):
        assert (shops[s]["score"], shops[s]["score_display"], shops[s]["band"]) == (
            None,
            None,
            "unscored",
        )
        assert shops[s]["peer_percentile"] is None
        # 12.13: dimension scores, bonus and indicator rows are still computed
        assert shops[s]["logistics_score"] is not None and shops[s]["service_score"] == 5.0
        assert shops[s]["bonus"] == 0.0
        assert tables["shop_indicators"].filter(pl.col("shop_id") == s).height == 12
    assert shops[2]["score"] is not None

    lowered = score(day_inputs(orders=orders), rules=default_rules(min_orders=29))
    assert {r["status"] for r in lowered["shop_scores"].to_dicts()} == {"scored"}


# ---------------------------------------------------------------- display, band, percentile


def test_score_display_is_rounded_down():
    # the 4.795 shop above: shows 4.7, not 4.8; band 4.5-4.8
    shop = shop_rows(score(day_inputs(orders=rated(1, 1, good=244, bad=6))))[1]
    assert shop["score"] == pytest.approx(4.795, abs=1e-9)
    assert shop["score_display"] == 4.7
    assert shop["band"] == "4.5-4.8"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5.0, "4.8+"),
        (4.8, "4.8+"),
        (4.799999999999999, "4.5-4.8"),
        (4.5, "4.5-4.8"),
        (4.499999999999999, "4.0-4.5"),
        (4.0, "4.0-4.5"),
        (3.999999999999999, "<4.0"),
        (3.0, "<4.0"),
        (None, "unscored"),
    ],
)
def test_band_edges(value, expected):
    frame = pl.DataFrame({"score": [value]}, schema={"score": pl.Float64})
    assert frame.select(band(pl.col("score"))).item() == expected


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.one_of(st.none(), st.sampled_from([3.0, 4.0, 4.25, 4.5, 5.0])),
        ),
        max_size=8,
    )
)
def test_peer_percentile_matches_its_definition(rows):
    # among non-null values of the same group: count of others strictly lower / (n - 1)
    frame = pl.DataFrame(rows, schema={"group": pl.Int64, "score": pl.Float64}, orient="row")
    got = frame.select(p=share_strictly_below("score", "group"))["p"].to_list()
    for (group, value), p in zip(rows, got, strict=True):
        peers = [v for g, v in rows if g == group and v is not None]
        if value is None or len(peers) == 1:
            assert p is None
        else:
            assert p == pytest.approx(sum(v < value for v in peers) / (len(peers) - 1), abs=1e-12)


def test_score_exactly_4_8_is_in_the_top_band():
    # k = 0 so smoothed == raw exactly. 500 orders paid recently (logistics not assessed),
    # all rated, 5 rated 1: 5/500 = 0.01 -> knot -> 4.8 exactly. One escalated session at
    # local 03:00 (outside service hours, unrated): help 1/500 = 0.002 -> knot -> 4.8 exactly.
    # score = 0.5*4.8 + 0.5*4.8 = 4.8 -> display 4.8, band 4.8+
    rules = rules_with(no_shrinkage("negative_review_rate", "platform_help_rate"))
    sessions = [{"started_at": local(2026, 3, 10, 3), "escalated_to_platform": True}]
    tables = score(day_inputs(orders=rated(1, 1, good=495, bad=5), cs_sessions=sessions), rules)
    assert indicator_row(tables, 1, "negative_review_rate")["indicator_score"] == 4.8
    assert indicator_row(tables, 1, "platform_help_rate")["indicator_score"] == 4.8
    shop = shop_rows(tables)[1]
    assert (shop["product_score"], shop["service_score"]) == (4.8, 4.8)
    assert shop["score"] == pytest.approx(4.8, abs=1e-9)
    assert (shop["score_display"], shop["band"]) == (4.8, "4.8+")


def test_peer_percentile_is_the_share_of_others_strictly_lower():
    # k = 0 (no shrinkage); orders paid recently, so score = (product + 5.0) / 2.
    # Category 5: A 0/30 negative -> 5.0 -> score 5.0; B and C 3/30 -> 3.5555.. -> 4.2777..;
    # D 6/30 = 0.2 -> 3.0 -> score 4.0; E 10 orders (unscored). Category 6: F alone.
    # A: 3 lower of 3 others = 1.0; B, C: D only -> 1/3; D: 0/3 = 0.0; E, F: null
    rules = rules_with(no_shrinkage("negative_review_rate"))
    orders = (
        rated(1, 1, good=30, bad=0)
        + rated(2, 101, good=27, bad=3)
        + rated(3, 201, good=27, bad=3)
        + rated(4, 301, good=24, bad=6)
        + rated(5, 401, good=10, bad=0)
        + rated(6, 501, good=30, bad=0, category_id=6)
    )
    shops = shop_rows(score(day_inputs(orders=orders), rules))
    assert shops[2]["score"] == pytest.approx((4.0 - 4 / 9 + 5.0) / 2, abs=1e-9)
    assert shops[2]["score"] == shops[3]["score"]
    assert shops[4]["score"] == pytest.approx(4.0, abs=1e-9)
    assert {s: r["peer_percentile"] for s, r in shops.items()} == pytest.approx(
        {1: 1.0, 2: 1 / 3, 3: 1 / 3, 4: 0.0, 5: None, 6: None}, abs=1e-12
    )


NEXT_DAY_CASES = [
    # (paid, delivered) in local time; next day = delivered before 00:00 local of the second
    # day after the local paid date
    pytest.param((2026, 3, 1, 23, 59, 59), (2026, 3, 2, 23, 59, 59), True, id="late-evening"),
    pytest.param((2026, 3, 1, 23, 59, 59), (2026, 3, 3, 0, 0, 0), False, id="second-midnight"),
    # paid 01:00 local = 17:00 UTC the day before: the local paid date is 03-02, so a delivery
    # at 03-03 23:00 local (15:00 UTC) is next day; by UTC dates it would be two days later
    pytest.param((2026, 3, 2, 1, 0, 0), (2026, 3, 3, 23, 0, 0), True, id="local-not-utc-date"),
    pytest.param((2026, 3, 1, 0, 0, 0), (2026, 3, 2, 23, 59, 59), True, id="almost-48h"),
    pytest.param((2026, 3, 1, 10, 0, 0), None, False, id="undelivered"),
]


def test_next_day_delivery_uses_local_dates():
    # one order per shop: share 1/1 >= 0.2 -> bonus 0.05, or 0/1 -> 0
    orders, events = [], []
    for n, case in enumerate(NEXT_DAY_CASES, start=1):
        paid, delivered, _ = case.values
        orders.append({"order_id": n, "shop_id": n, "paid_at": local(*paid)})
        if delivered:
            events.append({"order_id": n, "event_type": "delivered", "event_at": local(*delivered)})
    shops = shop_rows(score(day_inputs(orders=orders, logistics=events)))
    for n, case in enumerate(NEXT_DAY_CASES, start=1):
        expected = 0.05 if case.values[2] else 0.0
        assert shops[n]["bonus"] == pytest.approx(expected, abs=1e-12), case.id


def test_bonus_shares_count_cancelled_orders_in_v():
    # 12.3: 4 insured orders + 1 cancelled uninsured: 4/5 = 0.8 -> bonus 0.05;
    # 3 insured + 1 cancelled insured + 1 uninsured: 4/5 -> 0.05 as well
    cancelled = {"cancelled_at": PAID + HOUR}
    orders = [
        *many(4, 1, shop_id=1, return_insurance=True),
        {"order_id": 5, "shop_id": 1, **cancelled},
        *many(3, 11, shop_id=2, return_insurance=True),
        {"order_id": 14, "shop_id": 2, "return_insurance": True, **cancelled},
        {"order_id": 15, "shop_id": 2},
    ]
    shops = shop_rows(score(day_inputs(orders=orders)))
    assert shops[1]["bonus"] == pytest.approx(0.05, abs=1e-12)
    assert shops[2]["bonus"] == pytest.approx(0.05, abs=1e-12)


def test_a_shop_at_the_floor_of_every_indicator_scores_exactly_three() -> None:
    """0.35 x 3 + 0.30 x 3 + 0.35 x 3 is 2.9999999999999996 in doubles; the score stays 3.0."""
    from tests.builders import day_inputs, score, ts

    orders = [{"order_id": i, "review_rating": 1, "paid_at": ts(2026, 3, 1)} for i in range(1, 31)]
    sessions = [
        {"session_id": i, "started_at": ts(2026, 3, 2, 20), "escalated_to_platform": True}
        for i in range(1, 11)
    ]  # no pickup (0% on time), all rated 1, help rate 1/3: every assessed indicator at 3.0
    shop = score(day_inputs(orders=orders, cs_sessions=sessions))["shop_scores"].row(0, named=True)
    assert (shop["product_score"], shop["logistics_score"], shop["service_score"]) == (
        3.0,
        3.0,
        3.0,
    )
    assert shop["score"] == 3.0
    assert shop["score_display"] == 3.0


def test_pooled_hours_prior_does_not_wrap_past_int64() -> None:
    """Two shops of 2^62 microseconds each pool to 2^63: past Int64, still exact (Int128)."""
    import polars as pl

    from scoring.shop_score import with_priors

    counts = pl.LazyFrame(
        {
            "shop_id": [1, 2],
            "main_category_id": [5, 5],
            "indicator": ["delivery_hours"] * 2,
            "numerator": [2**62 / 3.6e9] * 2,
            "denominator": [15_000_000, 15_000_000],
            "numerator_units": [2**62, 2**62],
            "units_per_numerator": [3.6e9, 3.6e9],
        }
    )
    priors = with_priors(counts).collect()["prior"].to_list()
    assert priors == [2**63 / 3.6e9 / 30_000_000] * 2
