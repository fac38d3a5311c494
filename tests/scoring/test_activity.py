"""Contributions: what each fact row adds to its shop's sums, and until when it holds.

The window state moves its totals by recomputing only rows whose contribution can have changed,
so `recheck_at` must name the first later cutoff at which a row's contribution can differ and
`leaves_at` the instant the window's start must pass for it to count less. The cutoff is
2026-03-20 16:00 UTC (support.py).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from scoring.activity import (
    order_contributions,
    refund_contributions,
    session_contributions,
    shop_activity,
    window_totals,
)
from scoring.facts import order_facts
from scoring.window import Window
from tests.builders import PAID, RUN_DATE, day_inputs, ts

from .support import CUTOFF, HOUR, START

WINDOW = Window(RUN_DATE, 30, "Asia/Shanghai")
LATE_PAID = CUTOFF - 24 * HOUR  # its 48 h pickup deadline is 24 h after the cutoff


def orders(rows: list[dict], events: list[dict] = ()) -> pl.DataFrame:
    inputs = day_inputs(orders=rows, logistics=events)
    orders_v = order_facts(inputs.orders, inputs.logistics, inputs.refunds, WINDOW)
    return order_contributions(orders_v, WINDOW).collect().sort("order_id")


def recheck(frame: pl.DataFrame) -> list[dt.datetime | None]:
    return frame["recheck_at"].to_list()


def test_an_order_not_picked_up_is_rechecked_when_its_deadline_passes() -> None:
    rows = orders([{"order_id": 1, "paid_at": LATE_PAID, "updated_at": LATE_PAID}])
    assert recheck(rows) == [LATE_PAID + 48 * HOUR]
    assert rows["pickup_on_time_rate__den"].to_list() == [0]  # not due yet


def test_an_undelivered_order_is_rechecked_when_its_promise_passes() -> None:
    promise = CUTOFF + 5 * HOUR
    pickup = {"order_id": 1, "event_type": "picked_up", "event_at": CUTOFF - 2 * HOUR}
    rows = orders([{"order_id": 1, "promised_delivery_at": promise}], [pickup])
    # the trail would stall 72 h after the pickup, later than the promise
    assert recheck(rows) == [promise]
    assert rows["delivery_promise_rate__den"].to_list() == [0]


def test_an_undelivered_trail_is_rechecked_when_it_would_stall() -> None:
    last = CUTOFF - 10 * HOUR
    events = [
        {"order_id": 1, "event_type": "picked_up", "event_at": last - HOUR, "event_id": 1},
        {"order_id": 1, "event_type": "in_transit", "event_at": last, "event_id": 2},
    ]
    rows = orders([{"order_id": 1}], events)
    assert recheck(rows) == [last + 72 * HOUR]
    assert rows["track_anomaly_rate__num"].to_list() == [0]


def test_a_delivered_order_or_one_whose_instants_have_passed_is_never_rechecked() -> None:
    events = [
        {"order_id": 1, "event_type": "picked_up", "event_at": ts(2026, 3, 2), "event_id": 1},
        {"order_id": 1, "event_type": "delivered", "event_at": ts(2026, 3, 3), "event_id": 2},
    ]
    # order 2: never picked up, its deadline and promise long past
    rows = orders(
        [{"order_id": 1}, {"order_id": 2, "promised_delivery_at": ts(2026, 3, 4)}], events
    )
    assert recheck(rows) == [None, None]
    assert rows["pickup_on_time_rate__den"].to_list() == [1, 1]
    assert rows["leaves_at"].to_list() == [PAID, PAID]


def test_an_order_adds_its_counts_and_exact_microseconds() -> None:
    events = [
        {"order_id": 1, "event_type": "picked_up", "event_at": PAID + 3 * HOUR, "event_id": 1},
        {"order_id": 1, "event_type": "delivered", "event_at": PAID + 30 * HOUR, "event_id": 2},
    ]
    row = orders([{"order_id": 1, "review_rating": 2}], events).row(0, named=True)
    assert row["valid_orders"] == 1
    assert row["delivery_hours__num"] == 30 * 3_600_000_000
    assert row["delivery_hours__den"] == 1
    assert row["pickup_micros"] == 3 * 3_600_000_000
    assert row["negative_review_rate__num"] == row["problem_orders"] == 1


def test_a_refund_escalated_after_the_cutoff_is_kept_to_be_rechecked() -> None:
    escalated = CUTOFF + HOUR
    before_window = START - 24 * HOUR
    refunds = day_inputs(
        refunds=[
            {"refund_id": 1, "requested_at": ts(2026, 3, 5)},
            {"refund_id": 2, "requested_at": before_window, "updated_at": before_window},
            {
                "refund_id": 3,
                "requested_at": before_window,
                "platform_help": True,
                "escalated_at": escalated,
                "updated_at": before_window,
            },
        ]
    ).refunds
    rows = refund_contributions(refunds, WINDOW).collect().sort("refund_id")
    # refund 2 counts nowhere and never will: no row
    assert rows["refund_id"].to_list() == [1, 3]
    assert rows["refunds_in_window"].to_list() == [1, 0]
    assert rows["help_refunds"].to_list() == [0, 0]
    assert recheck(rows) == [None, escalated]
    assert rows["leaves_at"].to_list() == [ts(2026, 3, 5), escalated]


def test_a_session_outside_c_adds_nothing_but_one_after_the_cutoff_is_kept() -> None:
    after = CUTOFF + HOUR
    sessions = day_inputs(
        cs_sessions=[
            {"session_id": 1, "satisfaction": 5},
            {"session_id": 2, "started_at": START - HOUR, "satisfaction": 5},
            {"session_id": 3, "started_at": after, "satisfaction": 5},
        ]
    ).cs_sessions
    rows = session_contributions(sessions, WINDOW).collect().sort("session_id")
    assert rows["session_id"].to_list() == [1, 3]
    assert rows["sessions_in_window"].to_list() == [1, 0]
    assert rows["cs_satisfaction_rate__num"].to_list() == [1, 0]
    assert recheck(rows) == [None, after]


def test_totals_are_the_sums_of_contributions_whatever_their_order() -> None:
    rows = orders(
        [
            {"order_id": 1, "review_rating": 1, "category_id": 7, "amount_cents": 500},
            {"order_id": 2, "review_rating": 5, "category_id": 8, "amount_cents": 300},
            {"order_id": 3, "category_id": 8, "amount_cents": 300},
        ]
    )
    empty = day_inputs()
    refunds = refund_contributions(empty.refunds, WINDOW)
    sessions = session_contributions(empty.cs_sessions, WINDOW)

    def activity(frame: pl.DataFrame) -> pl.DataFrame:
        return shop_activity(window_totals(frame.lazy(), refunds, sessions)).collect()

    forward, backward = activity(rows), activity(rows.reverse())
    assert forward.equals(backward)
    shop = forward.row(0, named=True)
    assert shop["valid_orders"] == 3
    assert shop["negative_review_rate__num"] == 1
    assert shop["negative_review_rate__den"] == 2
    # 600 cents in category 8 beat 500 in category 7
    assert shop["main_category_id"] == 8
