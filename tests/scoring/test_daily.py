"""The six tables of one date: columns, types, dt / rules_version, row-order independence
(SCORING.md 1, 10, reading 12.18)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from tests.builders import PAID, RUN_DATE, Inputs, day_inputs, default_rules, score, ts
from tests.compare import frame_differences

from .support import HOUR, many
from .test_shop_score import full_shop

TABLES = (
    "shop_scores",
    "shop_indicators",
    "item_scores",
    "shop_labels",
    "shop_traffic_weights",
    "item_traffic_weights",
)


def rich_rows() -> dict[str, list[dict]]:
    """The full shop of test_shop_score plus shops with ties a reader could break by order."""
    rows = full_shop()
    # shop 2: category 7 and 9 tie on amount (main 7); order 101 has two delivered events at
    # the same instant (the smaller event id says 'door'); order 102 is never delivered
    rows["orders"] += [
        {"order_id": 101, "shop_id": 2, "item_id": 201, "category_id": 9, "amount_cents": 500},
        {"order_id": 102, "shop_id": 2, "item_id": 202, "category_id": 7, "amount_cents": 500},
        *many(30, 103, shop_id=3, item_id=300, category_id=7, review_rating=4),
    ]
    rows["logistics"] += [
        {"event_id": 9001, "order_id": 101, "event_type": "delivered",
         "event_at": PAID + 30 * HOUR, "door_delivery": True},
        {"event_id": 9002, "order_id": 101, "event_type": "delivered",
         "event_at": PAID + 30 * HOUR, "door_delivery": False},
        {"event_id": 9003, "order_id": 101, "event_type": "picked_up", "event_at": PAID + HOUR},
    ]  # fmt: skip
    rows["refunds"] += [{"order_id": 102, "shop_id": 2, "reason": "damaged"}]
    rows["cs_sessions"] += [{"shop_id": 3, "satisfaction": 5}]
    # give every row an explicit key, so reordering keeps the keys
    for log, key in (("orders", "order_id"), ("refunds", "refund_id"),
                     ("logistics", "event_id"), ("cs_sessions", "session_id")):  # fmt: skip
        for i, row in enumerate(rows[log], start=1):
            row.setdefault(key, i)
    return rows


def inputs(rows: dict[str, list[dict]]) -> Inputs:
    return day_inputs(**rows)


def test_every_table_carries_dt_and_rules_version():
    tables = score(inputs(rich_rows()), rules=default_rules(version="test-7"))
    for name in TABLES:
        table = tables[name]
        assert table.height > 0, name
        assert table["dt"].unique().to_list() == [RUN_DATE], name
        assert table["rules_version"].unique().to_list() == ["test-7"], name
        assert table.schema["dt"] == pl.Date and table.schema["rules_version"] == pl.String


def test_types_of_ids_counts_and_hours():
    # 12.18: ids and counts int64; hours numerator float64, denominator int64; dates
    tables = score(inputs(rich_rows()))
    expected = {
        "shop_scores": {"shop_id": pl.Int64, "valid_orders": pl.Int64, "score": pl.Float64},
        "shop_indicators": {
            "shop_id": pl.Int64,
            "numerator": pl.Float64,
            "denominator": pl.Int64,
            "assessed": pl.Boolean,
        },
        "item_scores": {
            "item_id": pl.Int64,
            "shop_id": pl.Int64,
            "paid_orders": pl.Int64,
            "problem_orders": pl.Int64,
        },
        "shop_labels": {"shop_id": pl.Int64, "since": pl.Date},
        "shop_traffic_weights": {"shop_id": pl.Int64, "campaign_eligible": pl.Boolean},
        "item_traffic_weights": {"item_id": pl.Int64, "shop_id": pl.Int64},
    }
    for name, columns in expected.items():
        for column, dtype in columns.items():
            assert tables[name].schema[column] == dtype, (name, column)
    assert tables["shop_indicators"].height == 12 * tables["shop_scores"].height


def test_category_ids_are_published_as_int64():
    """12.18: ids are int64 in the output, even though the input category_id is int32."""
    tables = score(inputs(rich_rows()))
    assert tables["shop_scores"].schema["main_category_id"] == pl.Int64
    assert tables["item_scores"].schema["category_id"] == pl.Int64


@pytest.fixture(scope="module")
def baseline():
    return score(inputs(rich_rows()))


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_output_does_not_depend_on_row_order(baseline, seed):
    # section 1: nothing written may depend on the order in which rows are read
    reordered = {}
    for log, log_rows in rich_rows().items():
        if seed is None:
            log_rows.reverse()
        else:
            random.Random(seed).shuffle(log_rows)
        reordered[log] = log_rows
    other = score(inputs(reordered))
    for name in TABLES:
        assert frame_differences(name, other[name], baseline[name]) == [], name


def test_ties_in_the_rich_input_come_out_as_the_spec_says(baseline):
    shop_2 = baseline["shop_scores"].filter(pl.col("shop_id") == 2).row(0, named=True)
    assert shop_2["main_category_id"] == 7  # 500 each for 7 and 9: the smallest id
    door = baseline["shop_indicators"].filter(
        (pl.col("shop_id") == 2) & (pl.col("indicator") == "door_delivery_rate")
    )
    assert door.select("numerator", "denominator").row(0) == (1.0, 1)  # event 9001 decides


def test_time_zone_and_window_length_come_from_the_rules():
    # Asia/Shanghai, 30 days: window 2026-02-18 16:00 .. 2026-03-20 16:00 UTC
    # UTC, 7 days:            window 2026-03-14 00:00 .. 2026-03-21 00:00 UTC
    orders = [
        {"order_id": 1, "item_id": 1, "paid_at": ts(2026, 3, 20, 20)},  # only in the UTC window
        {"order_id": 2, "item_id": 2, "paid_at": ts(2026, 3, 13, 23)},  # only in Shanghai's
        {"order_id": 3, "item_id": 3, "paid_at": ts(2026, 3, 14, 0)},  # in both
    ]
    # service hours [8, 23) local: 05:00 UTC is 13:00 in Shanghai (in) and 05:00 in UTC (out);
    # 08:30 UTC is 16:30 in Shanghai and 08:30 in UTC (in both)
    sessions = [{"started_at": ts(2026, 3, 15, 5)}, {"started_at": ts(2026, 3, 15, 8, 30)}]
    rows = {"orders": orders, "cs_sessions": sessions}
    shanghai = score(day_inputs(**rows))
    utc = score(day_inputs(**rows), rules=default_rules(timezone="UTC", window_days=7))

    assert set(shanghai["item_scores"]["item_id"]) == {2, 3}
    assert set(utc["item_scores"]["item_id"]) == {1, 3}

    def cs_denominator(tables):
        rows = tables["shop_indicators"].filter(pl.col("indicator") == "cs_response_rate")
        return rows["denominator"].item()

    assert cs_denominator(shanghai) == 2
    assert cs_denominator(utc) == 1


def test_a_session_only_shop_has_rows_in_the_shop_tables_but_no_items():
    tables = score(day_inputs(cs_sessions=[{"shop_id": 4, "started_at": ts(2026, 3, 3)}]))
    assert tables["shop_scores"]["shop_id"].to_list() == [4]
    assert tables["shop_traffic_weights"]["shop_id"].to_list() == [4]
    assert tables["item_scores"].height == 0 and tables["item_traffic_weights"].height == 0
