"""Exemptions (SCORING.md 13.3, 13.4), hand-computed on the whole-window path.

Run date 2026-03-20 (tz Asia/Shanghai); the orders are paid 2026-03-01 10:00 local, 02:00 UTC
(tests.builders.PAID), so their 48-hour pickup deadline is 2026-03-03 02:00 UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl

from scoring.rules import ExemptionRule, Rules
from tests.builders import (
    PAID,
    day_inputs,
    default_rules,
    indicator_row,
    picked_up_on_time,
    score,
    ts,
)

MARCH_1 = dt.date(2026, 3, 1)
LATE = dt.timedelta(hours=60)  # picked up 12 hours after the 48-hour deadline


def with_exemptions(*exemptions: ExemptionRule) -> Rules:
    return dataclasses.replace(default_rules(), exemptions=exemptions)


def holiday(**kw) -> ExemptionRule:
    """March 1st, every region, unless `kw` says otherwise."""
    return ExemptionRule(**{"name": "holiday", "paid_from": MARCH_1, "paid_to": MARCH_1, **kw})


def counts(tables: dict[str, pl.DataFrame], indicator: str, shop_id: int = 1) -> tuple:
    row = indicator_row(tables, shop_id, indicator)
    return row["numerator"], row["denominator"], row["excluded"]


def late_pickups(n: int, **order) -> tuple[list[dict], list[dict]]:
    orders = [{"order_id": i, **order} for i in range(1, n + 1)]
    return orders, picked_up_on_time(orders, after=LATE)


def test_ship_by_turns_a_late_pickup_on_time_and_removes_the_late_shipment() -> None:
    orders, events = late_pickups(2)
    plain = score(day_inputs(orders, logistics=events))
    assert counts(plain, "pickup_on_time_rate") == (0.0, 2, 0)
    assert plain["item_scores"]["problem_orders"].to_list() == [2]
    ship_by = dt.datetime(2026, 3, 4, 16, tzinfo=dt.UTC)  # 2026-03-05 00:00 local
    exempt = score(day_inputs(orders, logistics=events), with_exemptions(holiday(ship_by=ship_by)))
    assert counts(exempt, "pickup_on_time_rate") == (2.0, 2, 0)
    assert exempt["item_scores"]["problem_orders"].to_list() == [0]


def test_ship_by_never_makes_a_deadline_earlier() -> None:
    orders, events = late_pickups(1)
    early = holiday(ship_by=PAID + dt.timedelta(hours=1))
    assert counts(
        score(day_inputs(orders, logistics=events), with_exemptions(early)), "pickup_on_time_rate"
    ) == (0.0, 1, 0)


def test_exclude_from_removes_matching_rows_and_counts_them() -> None:
    """Three delivered orders, two paid on the holiday: delivery hours over the third alone."""
    orders = [
        {"order_id": 1},
        {"order_id": 2},
        {"order_id": 3, "paid_at": ts(2026, 3, 2, 2)},  # 2026-03-02 local
    ]
    events = [
        *picked_up_on_time(orders),
        *[
            {"order_id": o["order_id"], "event_type": "delivered", "event_at": ts(2026, 3, 4, 2)}
            for o in orders
        ],
    ]
    rules = with_exemptions(holiday(exclude_from=("delivery_hours",)))
    tables = score(day_inputs(orders, logistics=events), rules)
    assert counts(tables, "delivery_hours") == (48.0, 1, 2)  # 03-02 02:00 -> 03-04 02:00
    # the other indicators keep every order, and so do |V| and the main category
    assert counts(tables, "door_delivery_rate") == (0.0, 3, 0)
    assert tables["shop_scores"]["valid_orders"].to_list() == [3]


def test_a_region_exemption_never_matches_a_null_region() -> None:
    orders = [
        {"order_id": 1, "ship_to_region": "GD"},
        {"order_id": 2, "ship_to_region": None},
        {"order_id": 3, "ship_to_region": "ZJ"},
    ]
    events = picked_up_on_time(orders)
    typhoon = holiday(regions=("GD", "FJ"), exclude_from=("track_anomaly_rate",))
    tables = score(day_inputs(orders, logistics=events), with_exemptions(typhoon))
    assert counts(tables, "track_anomaly_rate") == (2.0, 2, 1)  # never delivered: stalled


def test_overlapping_exemptions_exclude_the_union_and_take_the_latest_ship_by() -> None:
    orders, events = late_pickups(1, ship_to_region="GD")
    first = holiday(ship_by=ts(2026, 3, 3, 4), exclude_from=("delivery_hours",))  # 12:00 local
    second = ExemptionRule(
        "typhoon",
        dt.date(2026, 2, 25),
        dt.date(2026, 3, 2),
        regions=("GD",),
        ship_by=ts(2026, 3, 5, 16),
        exclude_from=("track_anomaly_rate",),
    )
    tables = score(day_inputs(orders, logistics=events), with_exemptions(first, second))
    assert counts(tables, "pickup_on_time_rate") == (1.0, 1, 0)  # 03-03 12:00 alone: late
    assert counts(tables, "track_anomaly_rate") == (0.0, 0, 1)
    only_first = score(day_inputs(orders, logistics=events), with_exemptions(first))
    assert counts(only_first, "pickup_on_time_rate") == (0.0, 1, 0)


def test_an_order_excluded_from_pickup_is_not_a_late_shipment() -> None:
    orders, events = late_pickups(2)
    rules = with_exemptions(holiday(exclude_from=("pickup_on_time_rate",)))
    tables = score(day_inputs(orders, logistics=events), rules)
    assert counts(tables, "pickup_on_time_rate") == (0.0, 0, 2)
    assert tables["item_scores"]["problem_orders"].to_list() == [0]


def test_refunds_and_sessions_match_by_their_own_date_and_never_a_region_list() -> None:
    orders = [{"order_id": 1}]
    refunds = [
        {
            "refund_id": 1,
            "requested_at": ts(2026, 3, 1, 3),
            "seller_decision": "refused",
            "decided_at": ts(2026, 3, 1, 5),
        },
        {
            "refund_id": 2,
            "requested_at": ts(2026, 3, 2, 3),
            "seller_decision": "refused",
            "decided_at": ts(2026, 3, 2, 5),
        },
    ]
    sessions = [
        {"session_id": 1, "started_at": ts(2026, 3, 1, 3), "satisfaction": 5},
        {"session_id": 2, "started_at": ts(2026, 2, 28, 17), "satisfaction": 1},  # 03-01 local
        {"session_id": 3, "started_at": ts(2026, 3, 5, 3), "satisfaction": 1},
    ]
    named = ("refund_refusal_rate", "refund_handling_hours", "cs_satisfaction_rate")
    tables = score(
        day_inputs(orders, refunds, cs_sessions=sessions),
        with_exemptions(holiday(exclude_from=named)),
    )
    assert counts(tables, "refund_refusal_rate") == (1.0, 1, 1)
    assert counts(tables, "refund_handling_hours") == (2.0, 1, 1)
    assert counts(tables, "cs_satisfaction_rate") == (0.0, 1, 2)
    regional = score(
        day_inputs(orders, refunds, cs_sessions=sessions),
        with_exemptions(holiday(regions=("GD",), exclude_from=named)),
    )
    assert counts(regional, "refund_refusal_rate") == (2.0, 2, 0)
    assert counts(regional, "cs_satisfaction_rate") == (1.0, 3, 0)


def test_priors_pool_the_numerators_and_denominators_left_after_exclusion() -> None:
    """Shop 1: two late pickups on the holiday (excluded) and one on time on 03-02; shop 2:
    one late pickup on 03-02. The prior pools what is left: 1 on time of 2 due."""
    orders = [
        {"order_id": 1},
        {"order_id": 2},
        {"order_id": 3, "paid_at": ts(2026, 3, 2, 2)},
        {"order_id": 4, "paid_at": ts(2026, 3, 2, 2), "shop_id": 2},
    ]
    events = [
        *picked_up_on_time(orders[:2], after=LATE),
        *picked_up_on_time(orders[2:3]),
        *picked_up_on_time(orders[3:], after=LATE),
    ]
    rules = with_exemptions(holiday(exclude_from=("pickup_on_time_rate",)))
    tables = score(day_inputs(orders, logistics=events), rules)
    shop_1 = indicator_row(tables, 1, "pickup_on_time_rate")
    assert (shop_1["numerator"], shop_1["denominator"], shop_1["excluded"]) == (1.0, 1, 2)
    assert shop_1["raw_value"] == 1.0
    assert abs(shop_1["prior"] - 0.5) < 1e-12
    k = 20
    assert abs(shop_1["smoothed_value"] - (1 + k * 0.5) / (1 + k)) < 1e-12
