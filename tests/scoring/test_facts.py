"""Facts and indicator counts (SCORING.md 3 and 4, readings 12.2-12.8).

Each case is one tiny shop; the assertion is the indicator's (numerator, denominator) from the
spec's definition. Times: PAID = 2026-03-01 02:00 UTC, so the 48 h pickup deadline is
2026-03-03 02:00 UTC; the cutoff is 2026-03-20 16:00 UTC (see support.py).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tests.builders import PAID, day_inputs, indicator_row, score, ts

from .support import CUTOFF, HOUR, START, US, local, many

T0 = ts(2026, 3, 2)  # a pickup instant well inside the window


def ev(event_type: str, at: dt.datetime, door: bool | None = None, **more) -> dict:
    return {"order_id": 1, "event_type": event_type, "event_at": at, "door_delivery": door, **more}


def counts(tables: dict[str, pl.DataFrame], indicator: str, shop_id: int = 1) -> tuple:
    row = indicator_row(tables, shop_id, indicator)
    return row["numerator"], row["denominator"]


def one_order(order: dict, events: list[dict], indicator: str) -> tuple:
    tables = score(day_inputs(orders=[{"order_id": 1, **order}], logistics=events))
    return counts(tables, indicator)


def case_shops(cases: list) -> dict[str, pl.DataFrame]:
    """Score every case of a table at once: case n is shop n with order n (scoring one run
    costs about a second whatever its size, and counts do not depend on other shops).

    Explicit event ids keep their order inside a case (n * 100 + id).
    """
    orders, events = [], []
    for n, case in enumerate(cases, start=1):
        order, case_events = case.values[0], case.values[1]
        if len(case.values) == 2:  # (events, expected): the default order
            order, case_events = {}, case.values[0]
        orders.append({**order, "order_id": n, "shop_id": n})
        for j, event in enumerate(case_events):
            event_id = n * 100 + event.get("event_id", 50 + j)
            events.append({**event, "order_id": n, "shop_id": n, "event_id": event_id})
    return score(day_inputs(orders=orders, logistics=events))


def by_id(cases: list) -> list:
    """Parametrize with each case as one value (its own test id)."""
    return [pytest.param(case, id=case.id) for case in cases]


def case_counts(tables, cases: list, case_id: str, indicator: str) -> tuple:
    shop_id = next(n for n, case in enumerate(cases, start=1) if case.id == case_id)
    return counts(tables, indicator, shop_id)


# ---------------------------------------------------------------- pickup_on_time_rate

D48 = PAID + 48 * HOUR  # deadline(o) without a promised ship-by time

PICKUP_CASES = [
    pytest.param({}, [ev("picked_up", PAID + 47 * HOUR)], (1, 1), id="picked-up-in-time"),
    pytest.param({}, [ev("picked_up", D48)], (1, 1), id="picked-up-exactly-at-deadline"),
    pytest.param({}, [ev("picked_up", D48 + US)], (0, 1), id="picked-up-late"),
    pytest.param(
        {},
        [ev("picked_up", PAID + 60 * HOUR), ev("picked_up", PAID + 10 * HOUR)],
        (1, 1),
        id="earliest-pickup-decides",
    ),
    pytest.param({}, [], (0, 1), id="not-picked-up-deadline-passed"),
    # paid = cutoff - 48h: deadline == cutoff, not < cutoff -> not due yet
    pytest.param({"paid_at": CUTOFF - 48 * HOUR}, [], (0, 0), id="deadline-at-cutoff-not-due"),
    pytest.param(
        {"paid_at": CUTOFF - 48 * HOUR - US}, [], (0, 1), id="deadline-just-before-cutoff-due"
    ),
    pytest.param(
        {"paid_at": CUTOFF - 10 * HOUR},
        [ev("picked_up", CUTOFF - 5 * HOUR)],
        (1, 1),
        id="picked-up-before-deadline-is-due",
    ),
    # only events before the cutoff exist: the pickup at the cutoff is no pickup
    pytest.param({}, [ev("picked_up", CUTOFF)], (0, 1), id="pickup-at-cutoff-does-not-exist"),
    pytest.param({"cancelled_at": PAID + 5 * HOUR}, [], (0, 0), id="cancelled-before-deadline"),
    pytest.param({"cancelled_at": D48}, [], (0, 0), id="cancelled-exactly-at-deadline"),
    pytest.param({"cancelled_at": D48 + US}, [], (0, 1), id="cancelled-after-deadline-is-due"),
    pytest.param(
        {"cancelled_at": PAID + 30 * HOUR},
        [ev("picked_up", PAID + 20 * HOUR)],
        (1, 1),
        id="cancelled-after-pickup-is-due",
    ),
    # deadline = max(paid + 48h, promised_ship_at) = paid + 96h
    pytest.param(
        {"promised_ship_at": PAID + 96 * HOUR},
        [ev("picked_up", PAID + 90 * HOUR)],
        (1, 1),
        id="later-promise-moves-deadline",
    ),
    pytest.param(
        {"promised_ship_at": PAID + 96 * HOUR},
        [ev("picked_up", PAID + 96 * HOUR + US)],
        (0, 1),
        id="later-promise-still-missed",
    ),
    pytest.param(
        {"promised_ship_at": PAID + 5 * HOUR},
        [ev("picked_up", PAID + 40 * HOUR)],
        (1, 1),
        id="earlier-promise-does-not-shorten-deadline",
    ),
    pytest.param(
        {"promised_ship_at": PAID + 96 * HOUR, "cancelled_at": PAID + 72 * HOUR},
        [],
        (0, 0),
        id="cancelled-before-promised-deadline",
    ),
    pytest.param(
        {"paid_at": ts(2026, 3, 10), "promised_ship_at": CUTOFF + HOUR},
        [],
        (0, 0),
        id="promised-deadline-after-cutoff-not-due",
    ),
]


@pytest.fixture(scope="module")
def pickup_tables():
    return case_shops(PICKUP_CASES)


@pytest.mark.parametrize("case", by_id(PICKUP_CASES))
def test_pickup_on_time_rate(pickup_tables, case):
    expected = case.values[-1]
    assert case_counts(pickup_tables, PICKUP_CASES, case.id, "pickup_on_time_rate") == expected


# ---------------------------------------------------------------- delivery_promise_rate

PROMISE = PAID + 72 * HOUR

PROMISE_CASES = [
    pytest.param(
        {"promised_delivery_at": PROMISE},
        [ev("picked_up", PAID + 10 * HOUR), ev("delivered", PROMISE - HOUR)],
        (1, 1),
        id="delivered-before-promise",
    ),
    pytest.param(
        {"promised_delivery_at": PROMISE},
        [ev("picked_up", PAID + 10 * HOUR), ev("delivered", PROMISE)],
        (1, 1),
        id="delivered-exactly-at-promise",
    ),
    pytest.param(
        {"promised_delivery_at": PROMISE},
        [ev("picked_up", PAID + 10 * HOUR), ev("delivered", PROMISE + US)],
        (0, 1),
        id="delivered-after-promise",
    ),
    pytest.param({}, [ev("delivered", PROMISE - HOUR)], (0, 0), id="no-promise-not-in-denominator"),
    pytest.param(
        {"promised_delivery_at": PROMISE},
        [ev("picked_up", PAID + 10 * HOUR)],
        (0, 1),
        id="promise-passed-undelivered",
    ),
    pytest.param({"promised_delivery_at": PROMISE}, [], (0, 1), id="promise-passed-nothing"),
    pytest.param(
        {"promised_delivery_at": PROMISE, "cancelled_at": PAID + 5 * HOUR},
        [],
        (0, 0),
        id="cancelled-without-pickup",
    ),
    # unlike the pickup rule, no time condition: cancelled after the promise, never picked up
    pytest.param(
        {"promised_delivery_at": PROMISE, "cancelled_at": PROMISE + 28 * HOUR},
        [],
        (0, 0),
        id="cancelled-after-promise-without-pickup",
    ),
    pytest.param(
        {"promised_delivery_at": PROMISE, "cancelled_at": PAID + 20 * HOUR},
        [ev("picked_up", PAID + 10 * HOUR)],
        (0, 1),
        id="cancelled-after-pickup-is-due",
    ),
    pytest.param(
        {"paid_at": CUTOFF - 24 * HOUR, "promised_delivery_at": CUTOFF + 24 * HOUR},
        [],
        (0, 0),
        id="promise-in-future-not-due",
    ),
    pytest.param(
        {"paid_at": CUTOFF - 48 * HOUR, "promised_delivery_at": CUTOFF},
        [],
        (0, 0),
        id="promise-at-cutoff-not-due",
    ),
    pytest.param(
        {"paid_at": CUTOFF - 24 * HOUR, "promised_delivery_at": CUTOFF + 24 * HOUR},
        [ev("picked_up", CUTOFF - 20 * HOUR), ev("delivered", CUTOFF - HOUR)],
        (1, 1),
        id="promise-in-future-delivered-is-due",
    ),
    pytest.param(
        {"promised_delivery_at": PROMISE},
        [ev("picked_up", PAID + 10 * HOUR), ev("delivered", CUTOFF)],
        (0, 1),
        id="delivery-at-cutoff-does-not-exist",
    ),
]


@pytest.fixture(scope="module")
def promise_tables():
    return case_shops(PROMISE_CASES)


@pytest.mark.parametrize("case", by_id(PROMISE_CASES))
def test_delivery_promise_rate(promise_tables, case):
    expected = case.values[-1]
    assert case_counts(promise_tables, PROMISE_CASES, case.id, "delivery_promise_rate") == expected


# ---------------------------------------------------------------- track_anomaly_rate, stalls

STALL_CASES = [
    pytest.param(
        [ev("picked_up", T0), ev("delivered", T0 + 72 * HOUR)],
        (0, 1),
        id="gap-exactly-72h-is-not-a-stall",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("delivered", T0 + 72 * HOUR + US)],
        (1, 1),
        id="gap-72h-plus-1us-is-a-stall",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("in_transit", T0 + 48 * HOUR), ev("delivered", T0 + 96 * HOUR)],
        (0, 1),
        id="intermediate-event-splits-the-gap",
    ),
    pytest.param(
        [
            ev("picked_up", T0),
            ev("in_transit", T0 + HOUR),
            ev("delivered", T0 + 73 * HOUR + US),
        ],
        (1, 1),
        id="stall-between-later-events",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("picked_up", T0 + 50 * HOUR), ev("delivered", T0 + 100 * HOUR)],
        (0, 1),
        id="later-pickup-event-is-in-E",
    ),
    # undelivered: the last time of E is checked against the cutoff
    pytest.param(
        [ev("picked_up", CUTOFF - 100 * HOUR), ev("in_transit", CUTOFF - 72 * HOUR)],
        (0, 1),
        id="undelivered-exactly-72h-to-cutoff",
    ),
    pytest.param(
        [ev("picked_up", CUTOFF - 100 * HOUR), ev("in_transit", CUTOFF - 72 * HOUR - US)],
        (1, 1),
        id="undelivered-72h-plus-1us-to-cutoff",
    ),
    # E holds every event type: 'returned' splits 100 h into 50 h + 50 h (12.6)
    pytest.param(
        [ev("picked_up", CUTOFF - 100 * HOUR), ev("returned", CUTOFF - 50 * HOUR)],
        (0, 1),
        id="returned-event-is-in-E",
    ),
    pytest.param(
        [ev("picked_up", CUTOFF - 30 * HOUR), ev("out_for_delivery", CUTOFF - 20 * HOUR)],
        (0, 1),
        id="undelivered-recent-pickup",
    ),
    # events after delivered(o) are not in E: the 176 h to the late scan does not count
    pytest.param(
        [
            ev("picked_up", T0),
            ev("delivered", T0 + 24 * HOUR),
            ev("in_transit", T0 + 200 * HOUR),
            ev("returned", T0 + 300 * HOUR),
        ],
        (0, 1),
        id="events-after-delivered-ignored",
    ),
    pytest.param(
        [ev("in_transit", T0 - 100 * HOUR), ev("picked_up", T0), ev("delivered", T0 + 24 * HOUR)],
        (0, 1),
        id="events-before-pickup-ignored",
    ),
    pytest.param(
        [ev("picked_up", CUTOFF - 100 * HOUR), ev("in_transit", CUTOFF)],
        (1, 1),
        id="event-at-cutoff-does-not-exist",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("delivered", CUTOFF)],
        (1, 1),
        id="delivery-at-cutoff-means-undelivered",
    ),
    # 12.6: any exception before the cutoff marks the order, whenever it happened
    pytest.param(
        [ev("picked_up", T0), ev("exception", T0 + HOUR), ev("delivered", T0 + 24 * HOUR)],
        (1, 1),
        id="exception-in-transit",
    ),
    pytest.param(
        [ev("exception", T0 - 10 * HOUR), ev("picked_up", T0), ev("delivered", T0 + 24 * HOUR)],
        (1, 1),
        id="exception-before-pickup",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("delivered", T0 + 24 * HOUR), ev("exception", T0 + 100 * HOUR)],
        (1, 1),
        id="exception-after-delivery",
    ),
    pytest.param(
        [ev("picked_up", T0), ev("delivered", T0 + 24 * HOUR), ev("exception", CUTOFF)],
        (0, 1),
        id="exception-at-cutoff-does-not-exist",
    ),
    pytest.param([ev("exception", T0)], (0, 0), id="not-picked-up-not-in-denominator"),
]


@pytest.fixture(scope="module")
def stall_tables():
    return case_shops(STALL_CASES)


@pytest.mark.parametrize("case", by_id(STALL_CASES))
def test_track_anomaly_rate(stall_tables, case):
    expected = case.values[-1]
    assert case_counts(stall_tables, STALL_CASES, case.id, "track_anomaly_rate") == expected


# ---------------------------------------------------------------- delivery_hours


def test_delivery_hours_are_summed_in_exact_microseconds_and_divided_once():
    # 12.7. Order 1: 48 h + 1 us; order 2: 1 h + 2 us. Hours = (a + b) / 3.6e9 exactly.
    a = 48 * 3_600_000_000 + 1
    b = 1 * 3_600_000_000 + 2
    orders = [{"order_id": 1}, {"order_id": 2}, {"order_id": 3}]  # order 3 never delivered
    events = [
        ev("delivered", PAID + 48 * HOUR + US),
        ev("delivered", PAID + HOUR + 2 * US, order_id=2),
    ]
    tables = score(day_inputs(orders=orders, logistics=events))
    row = indicator_row(tables, 1, "delivery_hours")
    assert row["numerator"] == (a + b) / 3.6e9
    assert row["denominator"] == 2
    assert row["raw_value"] == pytest.approx((a + b) / 3.6e9 / 2, abs=1e-12)


def test_delivery_hours_use_the_earliest_delivery():
    # delivered twice: paid -> earliest delivered = 30 h
    events = [ev("delivered", PAID + 50 * HOUR), ev("delivered", PAID + 30 * HOUR)]
    assert one_order({}, events, "delivery_hours") == (30.0, 1)


# ---------------------------------------------------------------- door_delivery_rate

DELIVERED_AT = PAID + 30 * HOUR

DOOR_CASES = [
    pytest.param(
        [
            ev("delivered", DELIVERED_AT, False, event_id=7),
            ev("delivered", DELIVERED_AT, True, event_id=3),
        ],
        (1, 1),
        id="same-instant-smallest-event-id-says-door",
    ),
    pytest.param(
        [
            ev("delivered", DELIVERED_AT, True, event_id=7),
            ev("delivered", DELIVERED_AT, False, event_id=3),
        ],
        (0, 1),
        id="same-instant-smallest-event-id-says-locker",
    ),
    pytest.param(
        [
            ev("delivered", DELIVERED_AT + HOUR, True, event_id=1),
            ev("delivered", DELIVERED_AT, False, event_id=2),
        ],
        (0, 1),
        id="earliest-delivery-decides",
    ),
    pytest.param(
        [
            ev("delivered", DELIVERED_AT, None, event_id=1),
            ev("delivered", DELIVERED_AT, True, event_id=2),
        ],
        (0, 1),
        id="null-door-on-the-deciding-event-is-not-at-door",
    ),
    pytest.param([ev("delivered", DELIVERED_AT, None)], (0, 1), id="null-door-not-at-door"),
    pytest.param([ev("delivered", DELIVERED_AT, True)], (1, 1), id="door"),
    pytest.param([ev("picked_up", PAID + HOUR)], (0, 0), id="undelivered-not-counted"),
]


@pytest.fixture(scope="module")
def door_tables():
    return case_shops(DOOR_CASES)


@pytest.mark.parametrize("case", by_id(DOOR_CASES))
def test_door_delivery_rate(door_tables, case):
    expected = case.values[-1]
    assert case_counts(door_tables, DOOR_CASES, case.id, "door_delivery_rate") == expected


# ---------------------------------------------------------------- CS sessions


def test_service_hours_are_local_08_to_23():
    # UTC+8: local 07:59:59 = 23:59:59 UTC the day before; local 23:00 = 15:00 UTC.
    # Only 08:00:00 and 22:59:59 are in [8, 23): denominator 2, both answered fast.
    sessions = [
        {"started_at": local(2026, 3, 10, 7, 59, 59)},
        {"started_at": local(2026, 3, 10, 8, 0, 0)},
        {"started_at": local(2026, 3, 10, 22, 59, 59)},
        {"started_at": local(2026, 3, 10, 23, 0, 0)},
    ]
    assert sessions[0]["started_at"] == ts(2026, 3, 9, 23, 59, 59)
    tables = score(day_inputs(cs_sessions=sessions))
    assert counts(tables, "cs_response_rate") == (2, 2)


def test_three_minute_response_counts_180_not_181_nor_unanswered():
    at = local(2026, 3, 10, 10)
    sessions = [
        {"started_at": at, "first_response_seconds": 180},
        {"started_at": at, "first_response_seconds": 181},
        {"started_at": at, "first_response_seconds": None},
        {"started_at": at, "first_response_seconds": 0},
    ]
    tables = score(day_inputs(cs_sessions=sessions))
    assert counts(tables, "cs_response_rate") == (2, 4)  # 180 and 0


def test_cs_satisfaction_counts_4_and_5_over_rated_sessions():
    ratings = [5, 4, 3, 1, None]
    sessions = [{"satisfaction": r} for r in ratings]
    tables = score(day_inputs(cs_sessions=sessions))
    assert counts(tables, "cs_satisfaction_rate") == (2, 4)


def test_sessions_in_window_are_start_inclusive_cutoff_exclusive():
    sessions = [
        {"started_at": START - US, "satisfaction": 5},
        {"started_at": START, "satisfaction": 5},
        # closed as it started, so it is in partition D; one closed after the cutoff is not yet
        {"started_at": CUTOFF - US, "closed_at": CUTOFF - US, "satisfaction": 1},
        {"started_at": CUTOFF - US, "satisfaction": 1},
        {"started_at": CUTOFF, "satisfaction": 5},
    ]
    tables = score(day_inputs(cs_sessions=sessions))
    assert counts(tables, "cs_satisfaction_rate") == (1, 2)


def test_sessions_count_for_their_own_shop():
    # the session names shop 2 but an order of shop 1: shop 2's session (12.4)
    orders = [{"order_id": 1, "shop_id": 1}]
    sessions = [{"shop_id": 2, "order_id": 1, "satisfaction": 5}]
    tables = score(day_inputs(orders=orders, cs_sessions=sessions))
    assert counts(tables, "cs_satisfaction_rate", shop_id=2) == (1, 1)
    assert counts(tables, "cs_satisfaction_rate", shop_id=1) == (0, 0)


# ---------------------------------------------------------------- product indicators


def test_quality_refund_rate_over_delivered_orders():
    # delivered: 1..5 and 7. Quality refunds: 1 (quality), 2 (not_as_described).
    # 3 damaged (not quality), 4 none, 5 two quality refunds (counts once), 6 quality refund
    # but never delivered (not in the denominator), 7 abnormal quality refund (does not count).
    # numerator 3 (1, 2, 5), denominator 6 (1, 2, 3, 4, 5, 7)
    orders = many(7, 1)
    events = [ev("delivered", PAID + 30 * HOUR, order_id=i) for i in (1, 2, 3, 4, 5, 7)]
    refunds = [
        {"order_id": 1, "reason": "quality"},
        {"order_id": 2, "reason": "not_as_described"},
        {"order_id": 3, "reason": "damaged"},
        {"order_id": 5, "reason": "quality"},
        {"order_id": 5, "reason": "not_as_described"},
        {"order_id": 6, "reason": "quality"},
        {"order_id": 7, "reason": "quality", "is_abnormal": True},
    ]
    tables = score(day_inputs(orders=orders, logistics=events, refunds=refunds))
    assert counts(tables, "quality_refund_rate") == (3, 6)


def test_quality_refund_counts_for_the_orders_shop_not_the_refunds():
    # 12.4: the refund says shop 2, its order is shop 1's
    orders = [{"order_id": 1, "shop_id": 1}]
    events = [ev("delivered", PAID + 30 * HOUR, shop_id=2)]
    refunds = [{"order_id": 1, "shop_id": 2, "reason": "quality"}]
    tables = score(day_inputs(orders=orders, logistics=events, refunds=refunds))
    assert counts(tables, "quality_refund_rate", shop_id=1) == (1, 1)
    assert counts(tables, "quality_refund_rate", shop_id=2) == (0, 0)
    # the event's shop_id is ignored too: shop 2 has no delivered order
    assert counts(tables, "door_delivery_rate", shop_id=2) == (0, 0)


def test_negative_review_rate_counts_1_and_2_over_rated_orders():
    ratings = [1, 2, 3, 5, None]
    orders = [{"order_id": i, "review_rating": r} for i, r in enumerate(ratings, start=1)]
    tables = score(day_inputs(orders=orders))
    assert counts(tables, "negative_review_rate") == (2, 4)


# ---------------------------------------------------------------- refund indicators


def test_refund_refusal_rate_over_decided_refunds_of_r():
    decided = ts(2026, 3, 6)
    refunds = [
        {"seller_decision": "refused", "decided_at": decided},
        {"seller_decision": "agreed", "decided_at": decided},
        {"seller_decision": "negotiated", "decided_at": decided},
        {"seller_decision": None},  # undecided: not in the denominator
        # requested before the window: not in R
        {
            "requested_at": START - HOUR,
            "seller_decision": "refused",
            "decided_at": START + HOUR,
        },
        {"seller_decision": "refused", "decided_at": decided, "is_abnormal": True},
    ]
    tables = score(day_inputs(orders=[{"order_id": 1}], refunds=refunds))
    assert counts(tables, "refund_refusal_rate") == (1, 3)


def test_refund_indicators_use_the_refunds_own_shop():
    # 12.4: the order is shop 1's, the refund names shop 2 -> it is shop 2's refund
    refunds = [
        {"order_id": 1, "shop_id": 2, "seller_decision": "refused", "decided_at": ts(2026, 3, 6)}
    ]
    tables = score(day_inputs(orders=[{"order_id": 1, "shop_id": 1}], refunds=refunds))
    assert counts(tables, "refund_refusal_rate", shop_id=2) == (1, 1)
    assert counts(tables, "refund_refusal_rate", shop_id=1) == (0, 0)


def test_refund_handling_hours_in_exact_microseconds():
    # 10.5 h + 1 us and 2 h: numerator = (37_800_000_001 + 7_200_000_000) / 3.6e9
    requested = ts(2026, 3, 5)
    refunds = [
        {
            "requested_at": requested,
            "seller_decision": "agreed",
            "decided_at": requested + dt.timedelta(hours=10, minutes=30, microseconds=1),
        },
        {
            "requested_at": requested,
            "seller_decision": "refused",
            "decided_at": requested + 2 * HOUR,
        },
        {"requested_at": requested},  # undecided
    ]
    tables = score(day_inputs(orders=[{"order_id": 1}], refunds=refunds))
    row = indicator_row(tables, 1, "refund_handling_hours")
    assert row["numerator"] == (37_800_000_001 + 7_200_000_000) / 3.6e9
    assert row["denominator"] == 2


# ---------------------------------------------------------------- platform_help_rate


def test_platform_help_rate():
    # |V| = 10. Help refunds counted: null ruling, merchant_responsible, no_fault, and one
    # requested before the window but escalated inside it -> 4. Not counted: ruled
    # buyer_responsible, escalated before the window, escalated at the cutoff, abnormal,
    # platform_help without escalated_at (12.2). Escalated sessions of C: 1 (one more outside C).
    # numerator 4 + 1 = 5, denominator 10
    esc = ts(2026, 3, 8)
    help_ = {"platform_help": True, "escalated_at": esc}
    refunds = [
        {**help_},
        {**help_, "ruling": "merchant_responsible"},
        {**help_, "ruling": "no_fault"},
        {**help_, "requested_at": START - 48 * HOUR, "escalated_at": START + HOUR},
        {**help_, "ruling": "buyer_responsible"},
        {**help_, "requested_at": START - 48 * HOUR, "escalated_at": START - US},
        {**help_, "requested_at": CUTOFF - HOUR, "escalated_at": CUTOFF},
        {**help_, "is_abnormal": True},
        {"platform_help": True, "escalated_at": None},
    ]
    sessions = [
        {"escalated_to_platform": True},
        {"escalated_to_platform": False},
        {"escalated_to_platform": True, "started_at": START - HOUR},
    ]
    tables = score(day_inputs(orders=many(10, 1), refunds=refunds, cs_sessions=sessions))
    assert counts(tables, "platform_help_rate") == (5, 10)


def test_help_refunds_count_for_the_refunds_own_shop():
    # shop 2 has a session (so a row); the help refund names shop 2 on an order of shop 1
    refunds = [{"order_id": 1, "shop_id": 2, "platform_help": True, "escalated_at": ts(2026, 3, 8)}]
    orders = [{"order_id": 1, "shop_id": 1}]
    sessions = [{"shop_id": 2}]
    tables = score(day_inputs(orders=orders, refunds=refunds, cs_sessions=sessions))
    assert counts(tables, "platform_help_rate", shop_id=2) == (1, 0)
    assert counts(tables, "platform_help_rate", shop_id=1) == (0, 1)


def test_a_shop_whose_only_activity_is_a_help_refund_has_no_row():
    # 12.8: shop 9's refund was requested before the window and escalated inside it
    refunds = [
        {
            "order_id": 99,
            "shop_id": 9,
            "requested_at": START - 48 * HOUR,
            "platform_help": True,
            "escalated_at": START + HOUR,
        }
    ]
    tables = score(day_inputs(orders=many(2, 1), refunds=refunds))
    assert tables["shop_scores"]["shop_id"].to_list() == [1]
    assert set(tables["shop_indicators"]["shop_id"]) == {1}
    assert set(tables["shop_traffic_weights"]["shop_id"]) == {1}
    # and it counts nowhere: the pooled prior is shop 1's own 0 / 2
    assert indicator_row(tables, 1, "platform_help_rate")["prior"] == 0.0


# ---------------------------------------------------------------- V: window, abnormal, cancelled


def test_v_is_paid_in_window_start_inclusive_cutoff_exclusive():
    orders = [
        {"order_id": 1, "paid_at": START - US},
        {"order_id": 2, "paid_at": START},
        {"order_id": 3, "paid_at": CUTOFF - US},
        {"order_id": 4, "paid_at": CUTOFF},
    ]
    tables = score(day_inputs(orders=orders))
    assert tables["shop_scores"]["valid_orders"].to_list() == [2]
    assert counts(tables, "platform_help_rate") == (0, 2)


def test_abnormal_orders_count_nowhere():
    # order 3 is abnormal: rated 1, delivered, picked up late, 'damaged' refund on its item
    orders = [
        {"order_id": 1, "review_rating": 5},
        {"order_id": 2, "review_rating": 4},
        {
            "order_id": 3,
            "review_rating": 1,
            "is_abnormal": True,
            "amount_cents": 10**6,
            "category_id": 77,
        },
    ]
    events = [
        ev("picked_up", PAID + 90 * HOUR, order_id=3),
        ev("delivered", PAID + 100 * HOUR, order_id=3),
    ]
    refunds = [{"order_id": 3, "reason": "damaged"}]
    tables = score(day_inputs(orders=orders, logistics=events, refunds=refunds))
    shop = tables["shop_scores"].row(0, named=True)
    assert shop["valid_orders"] == 2
    assert shop["main_category_id"] == 5  # not 77
    assert counts(tables, "negative_review_rate") == (0, 2)
    assert counts(tables, "pickup_on_time_rate") == (0, 2)  # orders 1, 2: never picked up
    assert counts(tables, "delivery_hours") == (0, 0)
    assert counts(tables, "platform_help_rate") == (0, 2)
    items = tables["item_scores"].row(0, named=True)
    # orders 1, 2 are due and never picked up: late shipments (7 (c), v1.1); order 3 is not counted
    assert (items["paid_orders"], items["problem_orders"]) == (2, 2)


def test_a_shop_whose_only_order_or_refund_is_abnormal_has_no_row():
    orders = [{"order_id": 1, "shop_id": 1}, {"order_id": 2, "shop_id": 2, "is_abnormal": True}]
    refunds = [{"order_id": 1, "shop_id": 3, "is_abnormal": True}]
    tables = score(day_inputs(orders=orders, refunds=refunds))
    assert tables["shop_scores"]["shop_id"].to_list() == [1]


def test_abnormal_refunds_count_nowhere():
    decided = ts(2026, 3, 6)
    refunds = [
        {
            "seller_decision": "refused",
            "decided_at": decided,
            "is_abnormal": True,
            "reason": "quality",
            "platform_help": True,
            "escalated_at": decided,
        },
        {"seller_decision": "agreed", "decided_at": decided + HOUR},
    ]
    events = [ev("delivered", PAID + 30 * HOUR)]
    tables = score(day_inputs(orders=[{"order_id": 1}], logistics=events, refunds=refunds))
    assert counts(tables, "refund_refusal_rate") == (0, 1)
    assert counts(tables, "quality_refund_rate") == (0, 1)
    assert counts(tables, "platform_help_rate") == (0, 1)
    # 2026-03-05 00:00 -> 2026-03-06 01:00 = 25 h, from the normal refund only
    assert counts(tables, "refund_handling_hours") == (25.0, 1)


def test_cancelled_orders_stay_in_v():
    # 12.3: the cancelled order counts in valid_orders, the main category and every |V|
    orders = [
        {"order_id": 1, "category_id": 5, "amount_cents": 1000},
        {
            "order_id": 2,
            "item_id": 200,
            "category_id": 6,
            "amount_cents": 5000,
            "cancelled_at": PAID + HOUR,
            "return_insurance": True,
        },
    ]
    sessions = [{"escalated_to_platform": True}]
    tables = score(day_inputs(orders=orders, cs_sessions=sessions))
    shop = tables["shop_scores"].row(0, named=True)
    assert shop["valid_orders"] == 2
    assert shop["main_category_id"] == 6
    assert counts(tables, "platform_help_rate") == (1, 2)
    item_orders = dict(tables["item_scores"].select("category_id", "paid_orders").iter_rows())
    assert item_orders == {5: 1, 6: 1}
