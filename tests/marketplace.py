"""A Hypothesis strategy for small random marketplaces, written as raw partitions.

Each record lands in the partition of the local business day of its version time, as upstream
would emit it, so every row is valid input; what varies is everything the scoring reads.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from scoring.catalog import EXCLUDABLE_INDICATORS
from scoring.contract import EVENT_TYPES, REFUND_REASONS, RULINGS, SELLER_DECISIONS
from tests.builders import complete_rows, write_raw

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
RUN_DATE = dt.date(2026, 3, 20)
FIRST = dt.datetime(2026, 2, 12, tzinfo=dt.UTC)  # a week before the window start
LAST = dt.datetime(2026, 3, 20, 15, 59, tzinfo=dt.UTC)  # just before the cutoff of RUN_DATE

hours = st.integers(min_value=0, max_value=24 * 8)


def business_day(t: dt.datetime) -> dt.date:
    return t.astimezone(TZ).date()


def _clip(t: dt.datetime, version: int = 0) -> dt.datetime:
    """Keep a time before the run's cutoff; later versions stay strictly later.

    Two versions equal on (key, updated_at, dt) are duplicates to the spec ("any one counts"), so
    the strategy never makes two *different* versions share a version time.
    """
    return min(t, LAST) + dt.timedelta(seconds=version)


@st.composite
def orders_and_events(draw: st.DrawFn, order_id: int, shop_id: int) -> tuple[list, list]:
    paid = draw(
        st.datetimes(min_value=FIRST.replace(tzinfo=None), max_value=LAST.replace(tzinfo=None))
    )
    paid = paid.replace(microsecond=0, tzinfo=dt.UTC)
    category = draw(st.sampled_from([5, 1001, 7]))
    pickup_after = draw(st.one_of(st.none(), hours))
    versions = [
        {
            "order_id": order_id,
            "shop_id": shop_id,
            "item_id": shop_id * 100 + draw(st.integers(0, 2)),
            "category_id": category,
            "paid_at": paid,
            "amount_cents": draw(st.integers(0, 50_000)),
            "promised_ship_at": draw(st.one_of(st.none(), st.just(paid + dt.timedelta(hours=72)))),
            "promised_delivery_at": draw(
                st.one_of(st.none(), hours.map(lambda h: paid + dt.timedelta(hours=24 + h)))
            ),
            "return_insurance": draw(st.booleans()),
            "ship_to_region": draw(st.sampled_from([None, "GD", "ZJ"])),
            "is_abnormal": draw(st.booleans().filter(lambda _: True))
            and draw(st.integers(0, 9)) == 0,
            "updated_at": paid,
        }
    ]
    later = draw(hours)
    update_at = _clip(paid + dt.timedelta(hours=later), version=1)
    change = draw(st.sampled_from(["none", "review", "cancel"]))
    if change == "review":
        versions.append(
            {**versions[0], "review_rating": draw(st.integers(1, 5)), "updated_at": update_at}
        )
    elif change == "cancel":
        versions.append({**versions[0], "cancelled_at": update_at, "updated_at": update_at})

    events: list[dict[str, Any]] = []
    if pickup_after is not None:
        t = paid + dt.timedelta(hours=pickup_after, minutes=draw(st.integers(0, 59)))
        events.append(
            {"order_id": order_id, "shop_id": shop_id, "event_type": "picked_up", "event_at": t}
        )
        for _ in range(draw(st.integers(0, 3))):
            t = t + dt.timedelta(hours=draw(st.sampled_from([5, 30, 72, 73, 100])))
            kind = draw(st.sampled_from(EVENT_TYPES))
            door = draw(st.one_of(st.none(), st.booleans())) if kind == "delivered" else None
            events.append(
                {
                    "order_id": order_id,
                    "shop_id": shop_id,
                    "event_type": kind,
                    "event_at": t,
                    "door_delivery": door,
                }
            )
    events = [e for e in events if e["event_at"] <= LAST]
    return versions, events


@st.composite
def refund_for(draw: st.DrawFn, order: dict, refund_id: int) -> list[dict]:
    requested = _clip(order["paid_at"] + dt.timedelta(hours=draw(hours)))
    base = {
        "refund_id": refund_id,
        "order_id": order["order_id"],
        "shop_id": order["shop_id"],
        "item_id": order["item_id"],
        "requested_at": requested,
        "reason": draw(st.sampled_from(REFUND_REASONS)),
        "is_abnormal": draw(st.integers(0, 9)) == 0,
        "updated_at": requested,
    }
    versions = [base]
    if draw(st.booleans()):
        decided = _clip(
            requested + dt.timedelta(hours=draw(hours), seconds=draw(st.integers(0, 3599)))
        )
        versions.append(
            {
                **base,
                "seller_decision": draw(st.sampled_from(SELLER_DECISIONS)),
                "decided_at": decided,
                "updated_at": decided,
            }
        )
    if draw(st.booleans()):
        escalated = _clip(
            versions[-1]["updated_at"] + dt.timedelta(hours=draw(hours), seconds=1), 2
        )
        versions.append(
            {
                **versions[-1],
                "platform_help": True,
                "escalated_at": escalated,
                "ruling": draw(st.one_of(st.none(), st.sampled_from(RULINGS))),
                "updated_at": escalated,
            }
        )
    return versions


@st.composite
def sessions(draw: st.DrawFn, shop_id: int, first_id: int) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(0, 4))):
        started = draw(
            st.datetimes(
                min_value=FIRST.replace(tzinfo=None),
                max_value=(LAST - dt.timedelta(hours=1)).replace(tzinfo=None),
            )
        )
        started = started.replace(tzinfo=dt.UTC)
        rows.append(
            {
                "session_id": first_id + i,
                "shop_id": shop_id,
                "started_at": started,
                "first_response_seconds": draw(
                    st.one_of(st.none(), st.sampled_from([5, 30, 180, 181, 900]))
                ),
                "satisfaction": draw(st.one_of(st.none(), st.integers(1, 5))),
                "escalated_to_platform": draw(st.integers(0, 5)) == 0,
                "closed_at": started + dt.timedelta(minutes=20),
            }
        )
    return rows


@st.composite
def appeals_of(draw: st.DrawFn, logs: dict[str, list[dict]]) -> list[dict]:
    """Appeals against some orders, refunds and sessions (and an id that names nothing),
    decided hours after the subject, upheld or rejected; sometimes two for one subject."""
    subjects = [
        *[("order", o["order_id"], o["paid_at"], o["shop_id"]) for o in logs["orders"]],
        *[("refund", r["refund_id"], r["requested_at"], r["shop_id"]) for r in logs["refunds"]],
        *[("session", s["session_id"], s["started_at"], s["shop_id"]) for s in logs["cs_sessions"]],
        ("order", 10_000, FIRST, 1),  # no such order: changes nothing
    ]
    rows = []
    picks = st.lists(st.tuples(st.sampled_from(subjects), hours, st.booleans()), max_size=6)
    for appeal_id, (subject, after, upheld) in enumerate(draw(picks), start=1):
        kind, subject_id, at, shop_id = subject
        rows.append(
            {
                "appeal_id": appeal_id,
                "shop_id": shop_id,
                "subject": kind,
                "subject_id": subject_id,
                "outcome": "upheld" if upheld else "rejected",
                "decided_at": _clip(at + dt.timedelta(hours=after, minutes=1)),
            }
        )
    return rows


@st.composite
def marketplaces(draw: st.DrawFn, max_orders: int = 40) -> dict[str, list[dict]]:
    """Rows per log (complete, typed by `frame`), each version at its own time."""
    logs: dict[str, list[dict]] = {"orders": [], "refunds": [], "logistics": [], "cs_sessions": []}
    n_orders = draw(st.integers(1, max_orders))
    event_id = 1
    for order_id in range(1, n_orders + 1):
        shop_id = draw(st.integers(1, 4))
        versions, events = draw(orders_and_events(order_id, shop_id))
        logs["orders"] += versions
        for event in events:
            logs["logistics"].append({"event_id": event_id, **event})
            event_id += 1
        if draw(st.integers(0, 3)) == 0:
            logs["refunds"] += draw(refund_for(versions[0], order_id))
    for shop_id in range(1, 5):
        logs["cs_sessions"] += draw(sessions(shop_id, shop_id * 1000))
    logs["appeals"] = draw(appeals_of(logs))
    return {log: complete_rows(log, rows) for log, rows in logs.items()}


@st.composite
def exemptions(draw: st.DrawFn) -> list[dict]:
    """0-2 random `[[exemptions]]` entries as the TOML parser gives them (13.3)."""
    entries = []
    for n in range(draw(st.integers(0, 2))):
        first = dt.date(2026, 2, 12) + dt.timedelta(days=draw(st.integers(0, 36)))
        ship_by = draw(st.one_of(st.none(), st.integers(0, 24 * 12)))
        excluded = draw(st.lists(st.sampled_from(EXCLUDABLE_INDICATORS), unique=True, max_size=4))
        if ship_by is None and not excluded:
            excluded = ["delivery_hours"]
        entry = {
            "name": f"e{n}",
            "paid_from": first,
            "paid_to": first + dt.timedelta(days=draw(st.integers(0, 6))),
            "regions": draw(st.sampled_from([[], ["GD"], ["GD", "ZJ"], ["XX"]])),
            "exclude_from": excluded,
        }
        if ship_by is not None:
            start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
            entry["ship_by"] = start + dt.timedelta(hours=ship_by)
        entries.append(entry)
    return entries


def write_marketplace(
    raw: Path, logs: dict[str, list[dict]], files_per_partition: int = 1, order_key: int = 0
) -> Path:
    """Write each row into the partition of its version's business day (`write_raw` in the
    marketplace's zone)."""
    return write_raw(raw, logs, TZ.key, files_per_partition, order_key)
