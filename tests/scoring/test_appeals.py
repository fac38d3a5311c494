"""Upheld appeals (SCORING.md 13.2, 13.4), hand-computed on the whole-window path.

Run date 2026-03-20; the orders are paid 2026-03-01 10:00 local (tests.builders.PAID).
"""

from __future__ import annotations

import polars as pl

from tests.builders import day_inputs, indicator_row, picked_up_on_time, score, ts

ORDERS = [{"order_id": i} for i in (1, 2, 3)]


def shop(tables: dict[str, pl.DataFrame], shop_id: int = 1) -> dict:
    rows = tables["shop_scores"].filter(pl.col("shop_id") == shop_id)
    assert rows.height == 1
    return rows.row(0, named=True)


def test_an_upheld_order_appeal_removes_the_order_from_v() -> None:
    tables = score(day_inputs(ORDERS, appeals=[{"subject_id": 2}]))
    assert shop(tables)["valid_orders"] == 2
    assert shop(tables)["appeals_upheld"] == 1
    assert tables["item_scores"]["paid_orders"].to_list() == [2]


def test_a_rejected_appeal_changes_nothing() -> None:
    tables = score(day_inputs(ORDERS, appeals=[{"subject_id": 2, "outcome": "rejected"}]))
    assert shop(tables)["valid_orders"] == 3
    assert shop(tables)["appeals_upheld"] == 0


def test_copies_and_a_rejected_appeal_beside_an_upheld_one_count_the_subject_once() -> None:
    appeals = [
        {"appeal_id": 1, "subject_id": 2, "outcome": "rejected"},
        {"appeal_id": 2, "subject_id": 2},
        {"appeal_id": 2, "subject_id": 2},
    ]
    tables = score(day_inputs(ORDERS, appeals=appeals))
    assert (shop(tables)["valid_orders"], shop(tables)["appeals_upheld"]) == (2, 1)


def test_the_subject_is_matched_by_its_id_alone() -> None:
    """The appealing shop is reported, never used to match: the order's own shop loses it."""
    tables = score(day_inputs(ORDERS, appeals=[{"subject_id": 3, "shop_id": 99}]))
    assert (shop(tables)["valid_orders"], shop(tables)["appeals_upheld"]) == (2, 1)
    assert tables["shop_scores"].filter(pl.col("shop_id") == 99).height == 0


def test_an_appealed_order_leaves_the_main_category() -> None:
    orders = [
        {"order_id": 1, "category_id": 5, "amount_cents": 1000},
        {"order_id": 2, "category_id": 7, "amount_cents": 5000},
    ]
    assert shop(score(day_inputs(orders)))["main_category_id"] == 7
    appealed = score(day_inputs(orders, appeals=[{"subject_id": 2}]))
    assert shop(appealed)["main_category_id"] == 5


def test_an_appealed_refund_leaves_r_and_the_orders_quality_refunds() -> None:
    delivered = [
        *picked_up_on_time(ORDERS[:2]),
        {"order_id": 1, "event_type": "delivered", "event_at": ts(2026, 3, 3)},
        {"order_id": 2, "event_type": "delivered", "event_at": ts(2026, 3, 3)},
    ]
    refund = {
        "refund_id": 7,
        "order_id": 1,
        "reason": "quality",
        "seller_decision": "refused",
        "decided_at": ts(2026, 3, 6),
    }
    plain = score(day_inputs(ORDERS[:2], [refund], delivered))
    assert indicator_row(plain, 1, "refund_refusal_rate")["denominator"] == 1
    assert indicator_row(plain, 1, "quality_refund_rate")["numerator"] == 1.0
    appealed = score(
        day_inputs(
            ORDERS[:2], [refund], delivered, appeals=[{"subject": "refund", "subject_id": 7}]
        )
    )
    refusal = indicator_row(appealed, 1, "refund_refusal_rate")
    assert (refusal["numerator"], refusal["denominator"]) == (0.0, 0)
    quality = indicator_row(appealed, 1, "quality_refund_rate")
    assert (quality["numerator"], quality["denominator"]) == (0.0, 2)
    assert shop(appealed)["appeals_upheld"] == 1
    assert appealed["item_scores"]["problem_orders"].to_list() == [0]


def test_an_appealed_help_refund_leaves_the_platform_help_rate() -> None:
    refund = {
        "refund_id": 7,
        "platform_help": True,
        "escalated_at": ts(2026, 3, 7),
    }
    plain = score(day_inputs(ORDERS, [refund]))
    assert indicator_row(plain, 1, "platform_help_rate")["numerator"] == 1.0
    appeals = [{"subject": "refund", "subject_id": 7}]
    appealed = score(day_inputs(ORDERS, [refund], appeals=appeals))
    assert indicator_row(appealed, 1, "platform_help_rate")["numerator"] == 0.0


def test_an_appealed_session_leaves_c() -> None:
    sessions = [{"session_id": 1, "satisfaction": 1}, {"session_id": 2, "satisfaction": 5}]
    appeals = [{"subject": "session", "subject_id": 1}]
    tables = score(day_inputs(ORDERS, cs_sessions=sessions, appeals=appeals))
    satisfaction = indicator_row(tables, 1, "cs_satisfaction_rate")
    assert (satisfaction["numerator"], satisfaction["denominator"]) == (1.0, 1)
    assert shop(tables)["appeals_upheld"] == 1


def test_appeals_upheld_counts_orders_refunds_and_sessions_of_the_shop() -> None:
    """Only subjects that would be in V, R or C count: an abnormal order is not one."""
    orders = [*ORDERS, {"order_id": 4, "is_abnormal": True}]
    appeals = [
        {"appeal_id": 1, "subject_id": 1},
        {"appeal_id": 2, "subject_id": 4},
        {"appeal_id": 3, "subject": "refund", "subject_id": 1},
        {"appeal_id": 4, "subject": "session", "subject_id": 1},
    ]
    tables = score(
        day_inputs(orders, [{"refund_id": 1}], cs_sessions=[{"session_id": 1}], appeals=appeals)
    )
    assert shop(tables)["appeals_upheld"] == 3
    assert shop(tables)["valid_orders"] == 2


def test_a_shop_left_with_nothing_by_its_appeals_has_no_row() -> None:
    orders = [{"order_id": 1, "shop_id": 2}, *ORDERS]
    tables = score(day_inputs(orders, appeals=[{"subject_id": 1}]))
    assert tables["shop_scores"].filter(pl.col("shop_id") == 2).height == 0
