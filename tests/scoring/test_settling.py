"""When an order's contribution stops moving with the cutoff (scoring/settling.py).

The window state keeps the sums of settled orders and never recounts them, so `settled` must be
sound: an order settled at one cutoff adds exactly the same to every sum at every later cutoff.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.state.shard import ORDER_ROW_SCHEMA
from scoring.facts import window_order_facts
from scoring.settling import ORDER_SUMS, net_sums, order_sums, settled, sum_changes
from scoring.window import Window
from tests.builders import PAID, complete_rows
from tests.hypothesis_budget import examples

TZ = "Asia/Shanghai"  # PAID is 10:00 local on 2026-03-01
PAID_DATE = dt.date(2026, 3, 1)
HOUR = dt.timedelta(hours=1)
# one order of tests.builders' defaults, as a state row: no tracking facts, no refund flags
ROW = (
    {name: None for name in ORDER_ROW_SCHEMA}
    | complete_rows("orders", [{}])[0]
    | {"has_exception": False, "appeal_upheld": False, "_gone": False}
)


def rows(*orders: dict) -> pl.DataFrame:
    return pl.DataFrame([{**ROW, **o} for o in orders], schema=ORDER_ROW_SCHEMA)


def window(days_after_paid: int) -> Window:
    return Window(PAID_DATE + dt.timedelta(days=days_after_paid), 60, TZ)


def contribution(order: pl.DataFrame, w: Window) -> dict[str, list[dict]]:
    sums = order_sums(order.lazy(), w)
    return {table: sums[table].collect().to_dicts() for table in ORDER_SUMS}


def is_settled(order: pl.DataFrame, w: Window) -> bool:
    return window_order_facts(order.lazy(), w).select(settled(w.cutoff)).collect().item()


def at(hours: int | None) -> dt.datetime | None:
    return None if hours is None else PAID + hours * HOUR


hours = st.one_of(st.none(), st.integers(0, 24 * 20))


@st.composite
def orders(draw: st.DrawFn) -> pl.DataFrame:
    pickup = draw(hours)
    delivered = draw(hours)
    last_trail = None if pickup is None else pickup + draw(st.integers(0, 24 * 10))
    return rows(
        {
            "promised_ship_at": at(draw(hours)),
            "promised_delivery_at": at(draw(hours)),
            "cancelled_at": at(draw(hours)),
            "review_rating": draw(st.one_of(st.none(), st.integers(1, 5))),
            "is_abnormal": draw(st.booleans()),
            "appeal_upheld": draw(st.booleans()),
            "pickup_at": at(pickup),
            "delivered_at": at(delivered),
            "delivered_at_door": draw(st.booleans()),
            "has_exception": draw(st.booleans()),
            "longest_trail_gap_us": draw(st.one_of(st.none(), st.integers(0, 10**11 * 3))),
            "last_trail_event_at": at(last_trail),
            "has_quality_refund": draw(st.booleans()),
            "first_problem_requested_at": at(draw(hours)),
        }
    )


@settings(max_examples=examples(200), deadline=None)
@given(orders(), st.integers(0, 25), st.integers(1, 20))
def test_a_settled_order_adds_the_same_at_every_later_cutoff(
    order: pl.DataFrame, day: int, later: int
) -> None:
    now, then = window(day), window(day + later)
    if is_settled(order, now):
        assert contribution(order, now) == contribution(order, then)


def test_an_order_waiting_for_its_pickup_settles_when_the_deadline_passes() -> None:
    order = rows({})  # deadline: paid + 48 h = 2026-03-03 02:00 UTC, 10:00 local
    assert not is_settled(order, window(1))  # cutoff 2026-03-02 16:00 UTC
    assert is_settled(order, window(2))  # cutoff 2026-03-03 16:00 UTC
    assert contribution(order, window(1))["orders"][0]["pickup_on_time_rate__den"] == 0
    assert contribution(order, window(2))["orders"][0]["pickup_on_time_rate__den"] == 1


def test_an_open_trail_settles_72_hours_after_its_last_event() -> None:
    order = rows({"pickup_at": PAID + HOUR, "last_trail_event_at": PAID + 30 * HOUR})
    # last trail event 2026-03-02 08:00 UTC; + 72 h = 2026-03-05 08:00 UTC
    assert not is_settled(order, window(3))  # cutoff 2026-03-04 16:00 UTC
    assert is_settled(order, window(4))  # cutoff 2026-03-05 16:00 UTC
    assert contribution(order, window(3))["orders"][0]["track_anomaly_rate__num"] == 0
    assert contribution(order, window(4))["orders"][0]["track_anomaly_rate__num"] == 1


def test_a_problem_refund_requested_after_the_cutoff_settles_when_it_is_requested() -> None:
    order = rows(
        {
            "pickup_at": PAID + HOUR,
            "delivered_at": PAID + 20 * HOUR,
            "first_problem_requested_at": PAID + 100 * HOUR,  # 2026-03-05 06:00 UTC
        }
    )
    assert not is_settled(order, window(0))
    assert is_settled(order, window(4))
    assert contribution(order, window(0))["items"][0]["problem_orders"] == 0
    assert contribution(order, window(4))["items"][0]["problem_orders"] == 1


def test_a_delivered_order_with_nothing_open_is_settled_at_once() -> None:
    order = rows({"pickup_at": PAID + HOUR, "delivered_at": PAID + 20 * HOUR})
    assert is_settled(order, window(0))


def test_an_abnormal_order_is_always_settled_and_counts_nowhere() -> None:
    order = rows({"is_abnormal": True, "promised_delivery_at": PAID + 500 * HOUR})
    assert is_settled(order, window(0))
    assert contribution(order, window(0)) == {"orders": [], "categories": [], "items": []}


def test_a_deadline_exactly_at_the_cutoff_is_not_yet_due_so_the_order_is_not_settled() -> None:
    # Paid 2026-03-01 00:00 local (2026-02-28 16:00 UTC), no pickup: deadline(o) = paid + 48 h =
    # 2026-03-03 00:00 local = 2026-03-02 16:00 UTC, exactly the cutoff of run date 2026-03-02.
    order = rows({"paid_at": PAID - 10 * HOUR})
    # Due means deadline(o) < cutoff (4): not at that cutoff (0 due), but one day later it is
    # due and late (1 due, 0 on time, and a late shipment for PXI (7c)).
    at_deadline, day_after = contribution(order, window(1)), contribution(order, window(2))
    pickup = ("pickup_on_time_rate__num", "pickup_on_time_rate__den")
    assert [at_deadline["orders"][0][c] for c in pickup] == [0, 0]
    assert [day_after["orders"][0][c] for c in pickup] == [0, 1]
    assert [c["items"][0]["problem_orders"] for c in (at_deadline, day_after)] == [0, 1]
    # so at the cutoff equal to its deadline the order has not settled yet
    assert not is_settled(order, window(1))
    assert is_settled(order, window(2))


def test_a_cancelled_order_that_was_picked_up_stays_open_until_its_delivery_promise() -> None:
    # Picked up 2 h after payment (its only tracking event), cancelled an hour later, never
    # delivered; delivery promised for 2026-03-10 12:00 local = 2026-03-10 04:00 UTC (PAID + 218 h).
    order = rows(
        {
            "pickup_at": PAID + 2 * HOUR,
            "last_trail_event_at": PAID + 2 * HOUR,
            "cancelled_at": PAID + 3 * HOUR,
            "promised_delivery_at": PAID + 218 * HOUR,
        }
    )
    # Cancelled but picked up, so it stays in delivery_promise_rate (4): due once the promise has
    # passed, and not kept. Cutoff of run date 03-09: 03-09 16:00 UTC, before the promise (0 of 0);
    # of 03-10: 03-10 16:00 UTC, after it (0 of 1).
    before, after = contribution(order, window(8)), contribution(order, window(9))
    promise = ("delivery_promise_rate__num", "delivery_promise_rate__den")
    assert [before["orders"][0][c] for c in promise] == [0, 0]
    assert [after["orders"][0][c] for c in promise] == [0, 1]
    # Its open trail stalled long before (72 h after the pickup: 2026-03-04 04:00 UTC), so only
    # the promise still moves at the cutoff of 03-09: the order settles after the promise only.
    assert before["orders"][0]["track_anomaly_rate__num"] == 1
    assert not is_settled(order, window(8))
    assert is_settled(order, window(9))


def test_net_sums_take_away_exactly_and_drop_keys_left_with_no_order() -> None:
    w = window(10)
    one = rows({"order_id": 1}, {"order_id": 2, "item_id": 101, "shop_id": 2})
    both = order_sums(one.lazy(), w)
    second = order_sums(one.filter(pl.col("order_id") == 2).lazy(), w)
    first = order_sums(one.filter(pl.col("order_id") == 1).lazy(), w)
    for table in ORDER_SUMS:
        left = net_sums(table, [both[table]], [second[table]]).collect()
        assert left.to_dicts() == first[table].collect().to_dicts()


def test_a_change_keeps_a_key_whose_count_stayed_and_another_sum_moved() -> None:
    """An order whose pickup fell due between two nights adds the same order but one more due
    pickup: the night's change must carry that key, though its order count did not move."""
    order = rows({"promised_ship_at": None})  # never picked up: due once its deadline passes
    before, after = window(0), window(5)
    assert not is_settled(order, before)
    was = order_sums(order.lazy(), before)["orders"]
    now = order_sums(order.lazy(), after)["orders"]
    change = sum_changes("orders", [now], [was]).collect()
    assert change["valid_orders"].to_list() == [0]
    assert change["pickup_on_time_rate__den"].to_list() == [1]
    assert sum_changes("orders", [now], [now]).collect().height == 0  # nothing changed
    categories = order_sums(order.lazy(), after)["categories"]
    assert net_sums("categories", [categories], [categories]).collect().height == 0  # at zero
