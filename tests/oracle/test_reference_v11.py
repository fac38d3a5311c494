"""Hand-computed cases for the oracle's SCORING.md v1.1 additions (7 (c), 13).

These test the oracle alone: raw Parquet is written directly with pyarrow (no pipeline code is
imported), and the expected numbers are worked out by hand in each test from the spec.

Run date D = 2026-03-20, tz Asia/Shanghai (UTC+8): the window is 2026-02-19 00:00 local
(2026-02-18 16:00Z) .. cutoff 2026-03-21 00:00 local (2026-03-20 16:00Z).
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.oracle.reference import reference_tables

SPEC_RULES = Path("/work/shared/spec/rules.default.toml")
RUN_DATE = dt.date(2026, 3, 20)
UTC = dt.UTC
CST = dt.timezone(dt.timedelta(hours=8))


def ts(*args: int) -> dt.datetime:
    """A UTC instant."""
    return dt.datetime(*args, tzinfo=UTC)


def rules(exemptions: list[dict] | None = None) -> dict:
    """The spec's default rules, with the given exemptions (none by default)."""
    with open(SPEC_RULES, "rb") as fh:
        data = tomllib.load(fh)
    data["exemptions"] = [] if exemptions is None else exemptions
    return data


def ex(name: str, day_from: dt.date, day_to: dt.date, **kw) -> dict:
    return {"name": name, "paid_from": day_from, "paid_to": day_to, **kw}


# --------------------------------------------------------------------------------------------
# raw writers
# --------------------------------------------------------------------------------------------
I64, I32, I8, B, S, T = (
    pa.int64(),
    pa.int32(),
    pa.int8(),
    pa.bool_(),
    pa.string(),
    pa.timestamp("us", tz="UTC"),
)
TYPES = {
    "orders": {
        "order_id": I64,
        "shop_id": I64,
        "item_id": I64,
        "category_id": I32,
        "buyer_id": I64,
        "paid_at": T,
        "amount_cents": I64,
        "promised_ship_at": T,
        "promised_delivery_at": T,
        "return_insurance": B,
        "cancelled_at": T,
        "review_rating": I8,
        "is_abnormal": B,
        "updated_at": T,
        "ship_to_region": S,
    },
    "refunds": {
        "refund_id": I64,
        "order_id": I64,
        "shop_id": I64,
        "item_id": I64,
        "requested_at": T,
        "refund_type": S,
        "reason": S,
        "seller_decision": S,
        "decided_at": T,
        "platform_help": B,
        "escalated_at": T,
        "ruling": S,
        "negotiated_retained": B,
        "completed_at": T,
        "amount_cents": I64,
        "is_abnormal": B,
        "updated_at": T,
    },
    "logistics": {
        "event_id": I64,
        "order_id": I64,
        "shop_id": I64,
        "event_type": S,
        "event_at": T,
        "door_delivery": B,
    },
    "cs_sessions": {
        "session_id": I64,
        "shop_id": I64,
        "buyer_id": I64,
        "order_id": I64,
        "started_at": T,
        "first_response_seconds": I32,
        "satisfaction": I8,
        "escalated_to_platform": B,
        "closed_at": T,
    },
    "appeals": {
        "appeal_id": I64,
        "shop_id": I64,
        "subject": S,
        "subject_id": I64,
        "outcome": S,
        "decided_at": T,
    },
}
DEFAULTS = {
    "orders": {
        "shop_id": 1,
        "item_id": 100,
        "category_id": 5,
        "buyer_id": 9,
        "paid_at": ts(2026, 3, 1, 2),  # 10:00 local on 2026-03-01
        "amount_cents": 1000,
        "promised_ship_at": None,
        "promised_delivery_at": None,
        "return_insurance": False,
        "cancelled_at": None,
        "review_rating": None,
        "is_abnormal": False,
        "updated_at": None,
        "ship_to_region": None,
    },
    "refunds": {
        "order_id": 1,
        "shop_id": 1,
        "item_id": 100,
        "requested_at": ts(2026, 3, 5),
        "refund_type": "refund_only",
        "reason": "changed_mind",
        "seller_decision": None,
        "decided_at": None,
        "platform_help": False,
        "escalated_at": None,
        "ruling": None,
        "negotiated_retained": False,
        "completed_at": None,
        "amount_cents": 1000,
        "is_abnormal": False,
        "updated_at": None,
    },
    "logistics": {"shop_id": 1, "door_delivery": None},
    "cs_sessions": {
        "shop_id": 1,
        "buyer_id": 9,
        "order_id": None,
        "started_at": ts(2026, 3, 3, 2),  # 10:00 local, in service hours
        "first_response_seconds": 60,
        "satisfaction": None,
        "escalated_to_platform": False,
        "closed_at": None,
    },
    "appeals": {"shop_id": 1, "outcome": "upheld", "decided_at": ts(2026, 3, 19, 1)},
}


def write(raw: Path, log: str, rows: list[dict], day=RUN_DATE, name="part-0", drop=()) -> Path:
    """Rows (missing columns get harmless defaults) to <raw>/<log>/dt=<day>/<name>.parquet."""
    full = []
    for row in rows:
        r = {**DEFAULTS[log], **row}
        if log == "orders" and r["updated_at"] is None:
            r["updated_at"] = r["paid_at"]
        if log == "refunds" and r["updated_at"] is None:
            r["updated_at"] = max(
                t for t in (r["requested_at"], r["decided_at"], r["escalated_at"]) if t
            )
        if log == "cs_sessions" and r["closed_at"] is None:
            r["closed_at"] = r["started_at"] + dt.timedelta(minutes=10)
        full.append(r)
    cols = [c for c in TYPES[log] if c not in drop]
    table = pa.table({c: pa.array([r[c] for r in full], type=TYPES[log][c]) for c in cols})
    folder = raw / log / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    return path


def events(raw: Path, rows: list[tuple], day=RUN_DATE) -> None:
    """(order_id, event_type, event_at[, door_delivery]) tuples; event ids count up from 1."""
    out = []
    for i, r in enumerate(rows, start=1):
        out.append(
            {
                "event_id": i,
                "order_id": r[0],
                "event_type": r[1],
                "event_at": r[2],
                "door_delivery": r[3] if len(r) > 3 else None,
            }
        )
    write(raw, "logistics", out, day)


def run(raw: Path, rules_: dict | None = None, day=RUN_DATE) -> dict:
    return reference_tables(raw, day, rules() if rules_ is None else rules_, None)


def shop(tables: dict, shop_id: int) -> dict:
    rows = [r for r in tables["shop_scores"] if r["shop_id"] == shop_id]
    assert len(rows) == 1, rows
    return rows[0]


def ind(tables: dict, shop_id: int, indicator: str) -> dict:
    rows = [
        r
        for r in tables["shop_indicators"]
        if r["shop_id"] == shop_id and r["indicator"] == indicator
    ]
    assert len(rows) == 1, rows
    return rows[0]


def nd(tables: dict, shop_id: int, indicator: str) -> tuple:
    """(numerator, denominator, excluded) of one indicator row."""
    r = ind(tables, shop_id, indicator)
    return r["numerator"], r["denominator"], r["excluded"]


def item(tables: dict, item_id: int) -> dict:
    rows = [r for r in tables["item_scores"] if r["item_id"] == item_id]
    assert len(rows) == 1, rows
    return rows[0]


def shop_ids(tables: dict) -> set:
    return {r["shop_id"] for r in tables["shop_scores"]}


# --------------------------------------------------------------------------------------------
# 7 (c) late shipment
# --------------------------------------------------------------------------------------------
def test_late_shipment_is_a_problem_order(tmp_path: Path) -> None:
    # All paid 2026-03-01 02:00Z; deadline = paid + 48h = 03-03 02:00Z unless promised later.
    write(
        tmp_path,
        "orders",
        [
            {"order_id": 1},  # picked 03-02: on time
            {"order_id": 2},  # never picked, deadline < cutoff: due, late
            {"order_id": 3},  # picked 03-04: late
            {"order_id": 4, "cancelled_at": ts(2026, 3, 1, 3)},  # cancelled, no pickup: not due
            {"order_id": 5, "promised_ship_at": ts(2026, 3, 5, 2)},  # picked 03-04: on time
            {"order_id": 6, "review_rating": 1},  # never picked and a bad review: counted once
        ],
    )
    events(
        tmp_path,
        [
            (1, "picked_up", ts(2026, 3, 2, 2)),
            (3, "picked_up", ts(2026, 3, 4, 2)),
            (5, "picked_up", ts(2026, 3, 4, 2)),
        ],
    )
    t = run(tmp_path)
    assert nd(t, 1, "pickup_on_time_rate") == (2, 5, 0)
    it = item(t, 100)
    assert (it["paid_orders"], it["problem_orders"]) == (6, 3)  # orders 2, 3, 6
    # prior = 3/6 (the only item of category 5); smoothed = (3 + 10 * 0.5) / (6 + 10)
    assert it["smoothed_rate"] == pytest.approx(0.5)
    assert it["pxi"] == 0.0  # flat beyond the last knot (0.30, 0.0)
    # backward compatible: no appeals folder, no exemptions -> the new columns are all 0
    assert shop(t, 1)["appeals_upheld"] == 0
    assert {r["excluded"] for r in t["shop_indicators"]} == {0}


def test_late_shipment_without_exemptions_key(tmp_path: Path) -> None:
    """A rules dict without any `exemptions` key means no exemptions (13.3)."""
    write(tmp_path, "orders", [{"order_id": 1}])
    r = rules()
    del r["exemptions"]
    t = run(tmp_path, r)
    assert item(t, 100)["problem_orders"] == 1
    assert nd(t, 1, "pickup_on_time_rate") == (0, 1, 0)


# --------------------------------------------------------------------------------------------
# 13.2 upheld appeals
# --------------------------------------------------------------------------------------------
def _appeal_orders(raw: Path) -> None:
    write(
        raw,
        "orders",
        [
            {"order_id": 1},
            {"order_id": 2},
            {"order_id": 3},
            {"order_id": 4, "shop_id": 2, "item_id": 200},
            {"order_id": 5, "is_abnormal": True},  # never in V
            {"order_id": 6, "paid_at": ts(2026, 2, 1, 2)},  # paid before the window
        ],
    )


def test_upheld_order_appeal_removes_the_order(tmp_path: Path) -> None:
    _appeal_orders(tmp_path)
    write(
        tmp_path,
        "appeals",
        [
            # matched by id alone: the appeal's shop_id is not the order's
            {"appeal_id": 1, "shop_id": 999, "subject": "order", "subject_id": 2},
            {"appeal_id": 2, "subject": "order", "subject_id": 3, "outcome": "rejected"},
            {"appeal_id": 3, "shop_id": 2, "subject": "order", "subject_id": 4},
            {"appeal_id": 4, "subject": "order", "subject_id": 5},
            {"appeal_id": 5, "subject": "order", "subject_id": 6},
        ],
    )
    t = run(tmp_path)
    s1 = shop(t, 1)
    assert s1["valid_orders"] == 2  # orders 1 and 3
    # only order 2 would otherwise be in V (5 is abnormal, 6 out of window)
    assert s1["appeals_upheld"] == 1
    assert nd(t, 1, "platform_help_rate") == (0, 2, 0)
    assert item(t, 100)["paid_orders"] == 2
    assert item(t, 100)["problem_orders"] == 2  # both never picked up: late
    # shop 2's only row-giving subject was appealed: no row, no item row
    assert shop_ids(t) == {1}
    assert {r["item_id"] for r in t["item_scores"]} == {100}


def test_rejected_appeal_changes_nothing(tmp_path: Path) -> None:
    _appeal_orders(tmp_path)
    base = run(tmp_path)
    write(
        tmp_path,
        "appeals",
        [
            {"appeal_id": 1, "subject": "order", "subject_id": 2, "outcome": "rejected"},
            {"appeal_id": 2, "subject": "refund", "subject_id": 1, "outcome": "rejected"},
        ],
    )
    assert run(tmp_path) == base
    assert shop(base, 1)["valid_orders"] == 3
    assert shop(base, 2)["appeals_upheld"] == 0


def _refunds_and_sessions(raw: Path) -> None:
    write(raw, "orders", [{"order_id": 1}])
    events(
        raw,
        [
            (1, "picked_up", ts(2026, 3, 1, 10)),
            (1, "delivered", ts(2026, 3, 2, 2), True),
        ],
    )
    write(
        raw,
        "refunds",
        [
            # refund 1 (same number as order 1): a quality refund, refused after 1 h
            {
                "refund_id": 1,
                "reason": "quality",
                "requested_at": ts(2026, 3, 3),
                "seller_decision": "refused",
                "decided_at": ts(2026, 3, 3, 1),
            },
            # refund 11: agreed after 2 h, escalated to the platform (a help refund)
            {
                "refund_id": 11,
                "requested_at": ts(2026, 3, 3),
                "seller_decision": "agreed",
                "decided_at": ts(2026, 3, 3, 2),
                "platform_help": True,
                "escalated_at": ts(2026, 3, 4),
            },
        ],
    )
    write(
        raw,
        "cs_sessions",
        [
            {"session_id": 20, "satisfaction": 5},
            {"session_id": 21, "satisfaction": 1, "escalated_to_platform": True},
            {"session_id": 30, "shop_id": 2, "satisfaction": 5},  # shop 2's only activity
        ],
    )


def test_refund_and_session_baseline(tmp_path: Path) -> None:
    _refunds_and_sessions(tmp_path)
    t = run(tmp_path)
    assert nd(t, 1, "quality_refund_rate") == (1, 1, 0)
    assert nd(t, 1, "refund_refusal_rate") == (1, 2, 0)
    assert nd(t, 1, "refund_handling_hours") == (3.0, 2, 0)
    assert nd(t, 1, "cs_satisfaction_rate") == (1, 2, 0)
    assert nd(t, 1, "platform_help_rate") == (2, 1, 0)  # help refund 11 + session 21
    assert item(t, 100)["problem_orders"] == 1  # quality refund
    assert shop_ids(t) == {1, 2}


def test_upheld_refund_and_session_appeals(tmp_path: Path) -> None:
    _refunds_and_sessions(tmp_path)
    write(
        tmp_path,
        "appeals",
        [
            {"appeal_id": 1, "subject": "refund", "subject_id": 1},
            {"appeal_id": 2, "subject": "session", "subject_id": 21},
            {"appeal_id": 3, "subject": "session", "subject_id": 21},  # same subject again
            {"appeal_id": 4, "subject": "session", "subject_id": 21, "outcome": "rejected"},
            {"appeal_id": 5, "shop_id": 2, "subject": "session", "subject_id": 30},
        ],
    )
    t = run(tmp_path)
    s1 = shop(t, 1)
    assert s1["valid_orders"] == 1  # refund 1 is not order 1
    assert s1["appeals_upheld"] == 2  # refund 1, session 21 (counted once)
    assert nd(t, 1, "quality_refund_rate") == (0, 1, 0)
    assert nd(t, 1, "refund_refusal_rate") == (0, 1, 0)
    assert nd(t, 1, "refund_handling_hours") == (2.0, 1, 0)
    assert nd(t, 1, "cs_satisfaction_rate") == (1, 1, 0)
    assert nd(t, 1, "platform_help_rate") == (1, 1, 0)  # help refund 11 only
    assert item(t, 100)["problem_orders"] == 0
    assert shop_ids(t) == {1}  # shop 2 was left with no row


def test_upheld_help_refund_leaves_the_help_count(tmp_path: Path) -> None:
    _refunds_and_sessions(tmp_path)
    write(
        tmp_path,
        "appeals",
        [
            {"appeal_id": 1, "subject": "refund", "subject_id": 11},
            {"appeal_id": 2, "subject": "session", "subject_id": 21},
            # order 1 is appealed under subject "order" nowhere: order 1 stays
        ],
    )
    t = run(tmp_path)
    assert shop(t, 1)["appeals_upheld"] == 2
    assert nd(t, 1, "platform_help_rate") == (0, 1, 0)
    assert nd(t, 1, "refund_refusal_rate") == (1, 1, 0)
    assert item(t, 100)["problem_orders"] == 1


def test_upheld_order_keeps_its_refunds_in_r(tmp_path: Path) -> None:
    """READING R31: as for an abnormal order, the order's refunds stay in R."""
    _refunds_and_sessions(tmp_path)
    write(tmp_path, "appeals", [{"appeal_id": 1, "subject": "order", "subject_id": 1}])
    t = run(tmp_path)
    s1 = shop(t, 1)
    assert (s1["valid_orders"], s1["appeals_upheld"]) == (0, 1)
    assert nd(t, 1, "refund_refusal_rate") == (1, 2, 0)
    assert nd(t, 1, "quality_refund_rate") == (0, 0, 0)
    assert t["item_scores"] == []


# --------------------------------------------------------------------------------------------
# 13.1 appeals input and quarantine
# --------------------------------------------------------------------------------------------
def test_appeal_quarantine_codes_and_copies(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": i} for i in range(1, 6)])
    d19 = dt.date(2026, 3, 19)
    cutoff19 = ts(2026, 3, 19, 16)  # 2026-03-20 00:00 local
    write(
        tmp_path,
        "appeals",
        [
            {"appeal_id": 1, "subject": "order", "subject_id": 1},
            {"appeal_id": 2, "subject": "order", "subject_id": None},
            {"appeal_id": 3, "subject": "item", "subject_id": 2},
            {"appeal_id": 4, "subject": "order", "subject_id": 2, "outcome": "approved"},
            {"appeal_id": 5, "subject": "order", "subject_id": 2, "decided_at": cutoff19},
            {"appeal_id": 6, "subject": None, "subject_id": 2, "decided_at": cutoff19},
        ],
        day=d19,
    )
    # a copy of appeal 1 in the next partition: one appeal
    write(tmp_path, "appeals", [{"appeal_id": 1, "subject": "order", "subject_id": 1}])
    # partitions the run does not read: after D, and before the window
    write(
        tmp_path,
        "appeals",
        [{"appeal_id": 7, "subject": "order", "subject_id": 3}],
        day=dt.date(2026, 3, 21),
    )
    write(
        tmp_path,
        "appeals",
        [
            {
                "appeal_id": 8,
                "subject": "order",
                "subject_id": 4,
                "decided_at": ts(2026, 2, 1),
            }
        ],
        day=dt.date(2026, 2, 1),
    )
    t = run(tmp_path)
    q = sorted((r["key"], r["reason"], r["dt"]) for r in t["quarantine"] if r["log"] == "appeals")
    assert q == [
        (2, "null_in_required_column", d19),
        (3, "unknown_enum_value", d19),
        (4, "unknown_enum_value", d19),
        (5, "at_or_after_partition_cutoff", d19),
        (6, "null_in_required_column", d19),  # first code in 12.2 order
    ]
    s1 = shop(t, 1)
    assert s1["valid_orders"] == 4  # only order 1 left V; 2 (quarantined appeals), 3, 4 stay
    assert s1["appeals_upheld"] == 1


def test_appeals_file_missing_a_column_stops_the_run(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": 1}])
    path = write(
        tmp_path,
        "appeals",
        [{"appeal_id": 1, "subject": "order", "subject_id": 1}],
        drop=("outcome",),
    )
    with pytest.raises(ValueError, match="outcome") as info:
        run(tmp_path)
    assert str(path) in str(info.value)


def test_missing_appeals_partition_means_none(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": 1}])
    (tmp_path / "appeals").mkdir()  # folder, no partition
    assert shop(run(tmp_path), 1)["appeals_upheld"] == 0


# --------------------------------------------------------------------------------------------
# 13.3 exemptions
# --------------------------------------------------------------------------------------------
D0301, D0302 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


def test_ship_by_turns_a_late_pickup_on_time(tmp_path: Path) -> None:
    write(
        tmp_path,
        "orders",
        [
            {"order_id": 1},  # picked 03-04 02:00Z: 72 h, late by the 48 h rule
            {"order_id": 2, "paid_at": ts(2026, 3, 17, 2)},  # never picked: due 03-19, late
            # promised 03-15 02:00Z, picked 03-14: on time; an earlier ship_by changes nothing
            {
                "order_id": 3,
                "paid_at": ts(2026, 3, 10, 2),
                "promised_ship_at": ts(2026, 3, 15, 2),
            },
        ],
    )
    events(
        tmp_path,
        [(1, "picked_up", ts(2026, 3, 4, 2)), (3, "picked_up", ts(2026, 3, 14, 2))],
    )
    base = run(tmp_path)
    assert nd(base, 1, "pickup_on_time_rate") == (1, 3, 0)
    assert item(base, 100)["problem_orders"] == 2
    ex_rules = rules(
        [
            ex("a", D0301, D0301, ship_by=dt.datetime(2026, 3, 5, tzinfo=CST)),
            # after cutoff: order 2 is not yet due (READING R35)
            ex("b", dt.date(2026, 3, 17), dt.date(2026, 3, 17), ship_by=ts(2026, 3, 25)),
            ex("c", dt.date(2026, 3, 10), dt.date(2026, 3, 10), ship_by=ts(2026, 3, 11)),
        ]
    )
    t = run(tmp_path, ex_rules)
    assert nd(t, 1, "pickup_on_time_rate") == (2, 2, 0)
    assert item(t, 100)["problem_orders"] == 0
    # nothing else moves: |V|, the other indicators
    assert shop(t, 1)["valid_orders"] == 3
    for name in ("track_anomaly_rate", "delivery_hours", "platform_help_rate"):
        assert nd(t, 1, name) == nd(base, 1, name)


def test_exclude_from_and_excluded_counts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "orders",
        [
            {"order_id": 1},  # paid 03-01 local
            {"order_id": 2, "paid_at": ts(2026, 3, 2, 2)},  # paid 03-02 local: matches
        ],
    )
    events(
        tmp_path,
        [
            (1, "picked_up", ts(2026, 3, 1, 12)),
            (1, "delivered", ts(2026, 3, 2, 2), True),  # 24 h, at the door
            (2, "picked_up", ts(2026, 3, 2, 12)),
            (2, "delivered", ts(2026, 3, 4, 2), False),  # 48 h, locker
        ],
    )
    write(
        tmp_path,
        "cs_sessions",
        [
            {"session_id": 1, "started_at": ts(2026, 3, 1, 2), "satisfaction": 5},
            {"session_id": 2, "started_at": ts(2026, 3, 2, 2), "satisfaction": 1},
            # 03-01 17:00Z is 03-02 01:00 local: matches by the local date; not in service hours
            {"session_id": 3, "started_at": ts(2026, 3, 1, 17), "satisfaction": 1},
        ],
    )
    write(
        tmp_path,
        "refunds",
        [
            # requested 03-02 09:00 local: matches; refused after 1 h
            {
                "refund_id": 1,
                "order_id": 2,
                "requested_at": ts(2026, 3, 2, 1),
                "seller_decision": "refused",
                "decided_at": ts(2026, 3, 2, 2),
            },
            {
                "refund_id": 2,
                "requested_at": ts(2026, 3, 5),
                "seller_decision": "agreed",
                "decided_at": ts(2026, 3, 5, 1),
            },
        ],
    )
    named = ["delivery_hours", "door_delivery_rate", "cs_satisfaction_rate", "refund_refusal_rate"]
    t = run(tmp_path, rules([ex("e", D0302, D0302, exclude_from=named)]))
    assert nd(t, 1, "delivery_hours") == (24.0, 1, 1)
    assert nd(t, 1, "door_delivery_rate") == (1, 1, 1)
    assert nd(t, 1, "cs_satisfaction_rate") == (1, 1, 2)
    assert nd(t, 1, "refund_refusal_rate") == (0, 1, 1)
    # not named: unchanged
    assert nd(t, 1, "quality_refund_rate") == (0, 2, 0)
    assert nd(t, 1, "track_anomaly_rate") == (0, 2, 0)
    assert nd(t, 1, "refund_handling_hours") == (2.0, 2, 0)
    assert nd(t, 1, "cs_response_rate") == (2, 2, 0)  # session 3 is outside service hours
    assert nd(t, 1, "platform_help_rate") == (0, 2, 0)
    assert shop(t, 1)["valid_orders"] == 2
    # priors pool the reduced sums (one shop: the prior is its own raw value)
    dh = ind(t, 1, "delivery_hours")
    assert dh["raw_value"] == 24.0
    assert dh["prior"] == pytest.approx(24.0)
    assert dh["smoothed_value"] == pytest.approx(24.0)
    assert dh["indicator_score"] == pytest.approx(5.0)


def test_region_exemption_never_matches_a_null_region(tmp_path: Path) -> None:
    write(
        tmp_path,
        "orders",
        [
            {"order_id": 1, "ship_to_region": "GD", "review_rating": 1},  # matches
            {"order_id": 2, "ship_to_region": None, "review_rating": 1},
            {"order_id": 3, "ship_to_region": "BJ", "review_rating": 1},
            # current version says BJ: the older GD version does not match
            {
                "order_id": 5,
                "ship_to_region": "GD",
                "review_rating": 1,
                "updated_at": ts(2026, 3, 1, 3),
            },
            {
                "order_id": 5,
                "ship_to_region": "BJ",
                "review_rating": 1,
                "updated_at": ts(2026, 3, 2),
            },
        ],
    )
    # a second file without the column: its orders have a null region
    write(
        tmp_path,
        "orders",
        [{"order_id": 4, "review_rating": 1}],
        name="old",
        drop=("ship_to_region",),
    )
    write(
        tmp_path,
        "cs_sessions",
        [{"session_id": 1, "started_at": ts(2026, 3, 1, 2), "satisfaction": 5}],
    )
    write(
        tmp_path,
        "refunds",
        [
            {
                "refund_id": 1,
                "requested_at": ts(2026, 3, 1, 3),
                "seller_decision": "agreed",
                "decided_at": ts(2026, 3, 1, 4),
            }
        ],
    )
    r = rules(
        [
            ex(
                "typhoon",
                D0301,
                D0301,
                regions=["GD", "SH"],
                exclude_from=[
                    "negative_review_rate",
                    "cs_satisfaction_rate",
                    "refund_refusal_rate",
                ],
            )
        ]
    )
    t = run(tmp_path, r)
    assert nd(t, 1, "negative_review_rate") == (4, 4, 1)
    # an exemption with regions never matches sessions or refunds
    assert nd(t, 1, "cs_satisfaction_rate") == (1, 1, 0)
    assert nd(t, 1, "refund_refusal_rate") == (0, 1, 0)
    # PXI (b) is not touched by the exclusion: all five have a bad review
    assert item(t, 100)["problem_orders"] == 5
    assert shop(t, 1)["valid_orders"] == 5


def test_two_overlapping_exemptions(tmp_path: Path) -> None:
    write(
        tmp_path,
        "orders",
        [
            {"order_id": 1, "paid_at": ts(2026, 3, 4, 2)},  # 03-04 local: both match
            {"order_id": 2, "paid_at": ts(2026, 3, 2, 2)},  # 03-02 local: "first" only
        ],
    )
    events(
        tmp_path,
        [
            (1, "picked_up", ts(2026, 3, 7, 2)),  # 03-07 10:00 local
            (1, "delivered", ts(2026, 3, 8, 2), True),
            (2, "picked_up", ts(2026, 3, 7, 2)),
            (2, "delivered", ts(2026, 3, 8, 2), True),
        ],
    )
    r = rules(
        [
            ex(
                "first",
                dt.date(2026, 3, 1),
                dt.date(2026, 3, 5),
                ship_by=dt.datetime(2026, 3, 6, tzinfo=CST),
                exclude_from=["delivery_hours"],
            ),
            ex(
                "second",
                dt.date(2026, 3, 3),
                dt.date(2026, 3, 10),
                ship_by=dt.datetime(2026, 3, 8, tzinfo=CST),
                exclude_from=["track_anomaly_rate"],
            ),
        ]
    )
    t = run(tmp_path, r)
    # order 1: latest ship_by 03-08 00:00 local -> on time; order 2: 03-06 00:00 -> late
    assert nd(t, 1, "pickup_on_time_rate") == (1, 2, 0)
    assert item(t, 100)["problem_orders"] == 1
    # union of the lists: order 1 leaves both, order 2 only delivery_hours
    assert nd(t, 1, "delivery_hours") == (0.0, 0, 2)
    assert nd(t, 1, "track_anomaly_rate") == (0, 1, 1)
    assert nd(t, 1, "door_delivery_rate") == (2, 2, 0)
    # every delivery_hours row of the run is excluded: not assessed for everyone (R36)
    dh = ind(t, 1, "delivery_hours")
    assert (dh["assessed"], dh["prior"], dh["raw_value"], dh["effective_weight"]) == (
        False,
        None,
        None,
        0.0,
    )


def test_excluded_from_pickup_is_not_a_late_shipment(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": 1}, {"order_id": 2, "paid_at": ts(2026, 3, 5, 2)}])
    t = run(tmp_path, rules([ex("x", D0301, D0301, exclude_from=["pickup_on_time_rate"])]))
    assert nd(t, 1, "pickup_on_time_rate") == (0, 1, 1)
    assert item(t, 100)["problem_orders"] == 1  # order 2 only


def test_labels_follow_the_reduced_satisfaction(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": 1}])
    sessions = [
        {"session_id": i, "started_at": ts(2026, 3, 3, 2), "satisfaction": 5} for i in range(20)
    ]
    sessions += [
        {"session_id": 100 + i, "started_at": ts(2026, 3, 2, 2), "satisfaction": 1}
        for i in range(5)
    ]
    for x in sessions:
        x["first_response_seconds"] = 20
    write(tmp_path, "cs_sessions", sessions)
    base = run(tmp_path)
    assert "high_cs_satisfaction" not in {r["label"] for r in base["shop_labels"]}  # 20/25
    t = run(tmp_path, rules([ex("y", D0302, D0302, exclude_from=["cs_satisfaction_rate"])]))
    labels = {r["label"]: r for r in t["shop_labels"]}
    assert labels["high_cs_satisfaction"]["value"] == 1.0  # 20/20, n = 20 = min_n
    assert labels["high_cs_satisfaction"]["display_text"] == "客服满意度 100%"
    # fast_cs_reply still reads all 25 sessions (R37)
    assert labels["fast_cs_reply"]["value"] == 20.0


def test_default_spring_festival_exemption(tmp_path: Path) -> None:
    """The shipped default (tomllib: dates and an aware ship_by) on a run in February."""
    day = dt.date(2026, 2, 28)
    write(tmp_path, "orders", [{"order_id": 1, "paid_at": ts(2026, 2, 15, 2)}], day=day)
    events(
        tmp_path,
        [
            (1, "picked_up", ts(2026, 2, 25, 2)),  # before 02-26 00:00 local
            (1, "delivered", ts(2026, 2, 27, 2), True),
        ],
        day=day,
    )
    with open(SPEC_RULES, "rb") as fh:
        default = tomllib.load(fh)
    t = run(tmp_path, default, day)
    assert nd(t, 1, "pickup_on_time_rate") == (1, 1, 0)
    assert nd(t, 1, "delivery_hours") == (0.0, 0, 1)
    assert nd(t, 1, "track_anomaly_rate") == (0, 0, 1)
    assert nd(t, 1, "delivery_promise_rate") == (0, 0, 0)  # no promise: not in the denominator
    assert nd(t, 1, "door_delivery_rate") == (1, 1, 0)
    assert item(t, 100)["problem_orders"] == 0
    t0 = run(tmp_path, rules(), day)
    assert nd(t0, 1, "pickup_on_time_rate") == (0, 1, 0)
    assert item(t0, 100)["problem_orders"] == 1


# --------------------------------------------------------------------------------------------
# 13.3 rules errors
# --------------------------------------------------------------------------------------------
GOOD = {"name": "ok", "paid_from": D0301, "paid_to": D0302, "exclude_from": ["delivery_hours"]}


@pytest.mark.parametrize(
    ("exemptions", "match"),
    [
        ([{**GOOD, "exclude_from": ["platform_help_rate"]}], "'ok'.*platform_help_rate"),
        ([{**GOOD, "exclude_from": ["delivery_hourz"]}], "'ok'.*delivery_hourz"),
        ([GOOD, {**GOOD, "exclude_from": ["cs_response_rate"]}], "'ok'.*two exemptions"),
        ([{**GOOD, "paid_from": D0302, "paid_to": D0301}], "'ok'.*paid_from"),
        ([{**GOOD, "exclude_from": []}], "'ok'.*neither"),
        ([{k: v for k, v in GOOD.items() if k != "exclude_from"}], "'ok'.*neither"),
        ([{**GOOD, "ship_by": dt.datetime(2026, 3, 5)}], "'ok'.*ship_by"),  # naive
        ([{**GOOD, "name": "Spring Festival"}], "'Spring Festival'"),
        ([{**GOOD, "paid_to": dt.datetime(2026, 3, 2, tzinfo=UTC)}], "'ok'.*paid_to"),
        ([{**GOOD, "regions": "GD"}], "'ok'.*regions"),
    ],
)
def test_rules_errors(tmp_path: Path, exemptions: list, match: str) -> None:
    write(tmp_path, "orders", [{"order_id": 1}])
    with pytest.raises(ValueError, match=match):
        run(tmp_path, rules(copy.deepcopy(exemptions)))


def test_rules_error_even_without_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'ok'"):
        run(tmp_path, rules([{**GOOD, "exclude_from": ["platform_help_rate"]}]))


def test_valid_exemptions_without_matches_change_nothing(tmp_path: Path) -> None:
    write(tmp_path, "orders", [{"order_id": 1}])
    base = run(tmp_path)
    far = dt.date(2025, 1, 1)
    ok = [
        ex("only_ship_by", far, far, ship_by=ts(2025, 1, 5)),
        ex("only_exclude", far, far, exclude_from=["cs_response_rate"], regions=[]),
    ]
    assert run(tmp_path, rules(ok)) == base
