"""`merge_tracking` folds later events into stored per-order rows exactly (issue 3).

The nightly state keeps one `tracking_facts` row per order and, when a day's events all come
after an order's stored ones, merges them instead of re-reading every event of the order. The
merge must give the row of all events together, whatever the milestones and trail look like.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.facts import later_events_only, merge_tracking, tracking_facts
from tests.hypothesis_budget import examples

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
TYPES = ("picked_up", "in_transit", "out_for_delivery", "delivered", "exception", "returned")
SCHEMA = {
    "event_id": pl.Int64,
    "order_id": pl.Int64,
    "event_type": pl.String,
    "event_at": pl.Datetime("us", "UTC"),
    "door_delivery": pl.Boolean,
}


def events(rows: list[tuple]) -> pl.DataFrame:
    """(order, type, hours after BASE, door) -> an events frame with ids in row order."""
    return pl.DataFrame(
        [
            {
                "event_id": i,
                "order_id": order,
                "event_type": kind,
                "event_at": BASE + dt.timedelta(hours=hours),
                "door_delivery": door,
            }
            for i, (order, kind, hours, door) in enumerate(rows)
        ],
        schema=SCHEMA,
    )


def merged_and_recomputed(rows: list[tuple], split_hours: float) -> tuple:
    """Rows before `split_hours` stored, the rest merged; against all rows at once."""
    frame = events(rows)
    at_split = BASE + dt.timedelta(hours=split_hours)
    earlier, later = (
        frame.filter(pl.col("event_at") <= at_split),
        frame.filter(pl.col("event_at") > at_split),
    )
    stored = tracking_facts(earlier.lazy())
    merged = merge_tracking(stored, later.lazy()).collect().sort("order_id")
    everything = (
        tracking_facts(frame.lazy())
        .join(later.lazy().select("order_id").unique(), on="order_id", how="semi")
        .collect()
        .sort("order_id")
        .select(merged.columns)
    )
    return merged, everything


def test_an_open_trail_goes_on_from_its_last_time():
    # picked up at 0, in transit at 10; later: in transit at 100 (a 90 h gap), delivered at 110
    rows = [(1, "picked_up", 0, None), (1, "in_transit", 10, None)]
    rows += [(1, "in_transit", 100, None), (1, "delivered", 110, True)]
    merged, everything = merged_and_recomputed(rows, 50)
    assert merged.equals(everything)
    assert merged["longest_trail_gap_us"].item() == 90 * 3_600_000_000
    assert merged["delivered_at_door"].item() is True


def test_a_closed_trail_ignores_later_events_but_not_their_exception():
    rows = [(1, "picked_up", 0, None), (1, "delivered", 20, False)]
    rows += [(1, "exception", 200, None), (1, "delivered", 300, True)]
    merged, everything = merged_and_recomputed(rows, 50)
    assert merged.equals(everything)
    assert merged.row(0, named=True) | {} == everything.row(0, named=True)
    assert merged["has_exception"].item() is True
    assert merged["delivered_at_door"].item() is False  # the first delivery decides


def test_a_pickup_after_a_delivery_leaves_the_trail_empty():
    rows = [(1, "delivered", 5, True), (1, "picked_up", 60, None), (1, "in_transit", 70, None)]
    merged, everything = merged_and_recomputed(rows, 50)
    assert merged.equals(everything)
    assert merged["longest_trail_gap_us"].item() is None


def test_only_later_events_are_merged():
    stored = tracking_facts(events([(1, "picked_up", 10, None), (2, "picked_up", 10, None)]).lazy())
    later = events(
        [(1, "in_transit", 11, None), (2, "in_transit", 10, None), (3, "picked_up", 0, None)]
    )
    extends = later_events_only(stored, later.lazy()).collect().sort("order_id")
    # order 2's new event is at its stored last instant, not after it; order 3 has no row
    assert extends.rows() == [(1, True), (2, False), (3, True)]


event_rows = st.lists(
    st.tuples(
        st.integers(1, 4),
        st.sampled_from(TYPES),
        st.integers(0, 400),
        st.sampled_from([None, True, False]),
    ),
    max_size=30,
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_rows, st.integers(-1, 400))
def test_merging_later_events_equals_recomputing_from_all(rows, split_hours):
    merged, everything = merged_and_recomputed(rows, split_hours)
    assert merged.equals(everything)
