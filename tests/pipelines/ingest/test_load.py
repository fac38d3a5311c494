"""The loader: file checks, quarantine reason codes, current state (SCORING.md 2.5, 12.1-12.2)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.errors import InputError
from pipelines.ingest.load import REASON_CODES
from pipelines.state import StateOptions, current_state, window_facts
from scoring.window import Window
from tests.builders import complete_rows, ts, write_partition

D = dt.date(2026, 3, 20)
WINDOW = Window(D, 30, "Asia/Shanghai")


def load(raw: Path) -> SimpleNamespace:
    """The window's load report and the current rows of a state built from `raw` alone."""
    with tempfile.TemporaryDirectory() as location:
        night = window_facts(raw, WINDOW, location, StateOptions())
        current = current_state(location)
    return SimpleNamespace(
        **vars(night.load), **{log: frame.lazy() for log, frame in current.items()}
    )


def test_latest_version_is_current_state(tmp_path: Path) -> None:
    write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{"order_id": 7}])
    write_partition(
        tmp_path,
        "orders",
        dt.date(2026, 3, 3),
        [{"order_id": 7, "review_rating": 4, "updated_at": ts(2026, 3, 3, 1)}],
    )
    orders = load(tmp_path).orders.collect()
    assert orders.height == 1
    assert orders["review_rating"].to_list() == [4]


def test_same_updated_at_later_partition_wins(tmp_path: Path) -> None:
    # a late copy of the same version time in a later dt: (updated_at, dt) decides
    write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{"order_id": 7, "review_rating": 2}])
    write_partition(tmp_path, "orders", dt.date(2026, 3, 4), [{"order_id": 7, "review_rating": 5}])
    assert load(tmp_path).orders.collect()["review_rating"].to_list() == [5]


def test_rejected_newest_version_falls_back_to_previous(tmp_path: Path) -> None:
    write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{"order_id": 7, "review_rating": 3}])
    write_partition(
        tmp_path,
        "orders",
        dt.date(2026, 3, 2),
        [{"order_id": 7, "review_rating": 9, "updated_at": ts(2026, 3, 2)}],
    )
    loaded = load(tmp_path)
    assert loaded.orders.collect()["review_rating"].to_list() == [3]
    assert loaded.rejected["orders"] == {"rating_out_of_range": 1}


@pytest.mark.parametrize(
    ("log", "row", "reason"),
    [
        ("orders", {"buyer_id": None}, "null_in_required_column"),
        ("refunds", {"reason": "bored"}, "unknown_enum_value"),
        (
            "refunds",
            {"seller_decision": "maybe", "decided_at": ts(2026, 3, 6)},
            "unknown_enum_value",
        ),
        ("orders", {"review_rating": 0}, "rating_out_of_range"),
        ("cs_sessions", {"satisfaction": 6}, "rating_out_of_range"),
        ("orders", {"amount_cents": -1}, "negative_value"),
        ("cs_sessions", {"first_response_seconds": -5}, "negative_value"),
        ("orders", {"updated_at": ts(2026, 3, 1, 1)}, "updated_before_created"),
        ("refunds", {"updated_at": ts(2026, 3, 4)}, "updated_before_created"),
        # cutoff of dt=2026-03-05 is 2026-03-05 16:00 UTC; exactly at it is rejected
        ("logistics", {"event_at": ts(2026, 3, 5, 16)}, "at_or_after_partition_cutoff"),
        ("cs_sessions", {"closed_at": ts(2026, 3, 5, 16)}, "at_or_after_partition_cutoff"),
        ("refunds", {"seller_decision": "agreed"}, "decision_time_mismatch"),
        ("refunds", {"decided_at": ts(2026, 3, 5, 3)}, "decision_time_mismatch"),
        # several broken rules: the first in the 12.2 order wins
        ("orders", {"buyer_id": None, "amount_cents": -1}, "null_in_required_column"),
    ],
)
def test_reason_codes(tmp_path: Path, log: str, row: dict, reason: str) -> None:
    write_partition(tmp_path, log, dt.date(2026, 3, 5), [row])
    loaded = load(tmp_path)
    assert loaded.rejected[log] == {reason: 1}
    assert loaded.quarantine["reason"].to_list() == [reason]
    assert reason in REASON_CODES


def test_just_before_cutoff_is_kept(tmp_path: Path) -> None:
    write_partition(
        tmp_path,
        "logistics",
        dt.date(2026, 3, 5),
        [{"event_at": ts(2026, 3, 5, 15, 59, 59, 999999)}],
    )
    loaded = load(tmp_path)
    assert loaded.rejected["logistics"] == {}
    assert loaded.logistics.collect().height == 1


def test_quarantine_keeps_the_whole_row(tmp_path: Path) -> None:
    write_partition(tmp_path, "orders", dt.date(2026, 3, 5), [{"order_id": 42, "amount_cents": -3}])
    q = load(tmp_path).quarantine.row(0, named=True)
    assert q["log"] == "orders"
    assert q["record_key"] == 42
    assert q["source_dt"] == dt.date(2026, 3, 5)
    assert q["source_row"] == 0
    assert '"amount_cents":-3' in q["row"]


def test_duplicate_events_count_once(tmp_path: Path) -> None:
    rows = [{"event_id": 5}, {"event_id": 5}]
    write_partition(tmp_path, "logistics", dt.date(2026, 3, 2), rows)
    write_partition(tmp_path, "logistics", dt.date(2026, 3, 3), rows[:1])
    assert load(tmp_path).logistics.collect().height == 1


def test_partitions_outside_window_are_not_read(tmp_path: Path) -> None:
    # window of D=2026-03-20 starts at dt=2026-02-19
    write_partition(tmp_path, "orders", dt.date(2026, 2, 18), [{"order_id": 1}])
    write_partition(tmp_path, "orders", dt.date(2026, 3, 21), [{"order_id": 2}])
    loaded = load(tmp_path)
    assert loaded.rows_read["orders"] == 0


def test_narrow_integers_and_naive_timestamps_are_accepted(tmp_path: Path) -> None:
    rows = complete_rows("orders", [{"order_id": 3, "review_rating": 5}])
    table = pa.Table.from_pylist(rows)
    table = table.set_column(
        table.schema.get_field_index("order_id"), "order_id", pa.array([3], pa.int16())
    )
    table = table.set_column(
        table.schema.get_field_index("category_id"), "category_id", pa.array([5], pa.int64())
    )
    naive = pa.array([r["paid_at"].replace(tzinfo=None) for r in rows], pa.timestamp("ns"))
    table = table.set_column(table.schema.get_field_index("paid_at"), "paid_at", naive)
    folder = tmp_path / "orders" / "dt=2026-03-01"
    folder.mkdir(parents=True)
    pq.write_table(table.select(list(reversed(table.column_names))), folder / "x.parquet")
    orders = load(tmp_path).orders.collect()
    assert orders["order_id"].to_list() == [3]
    assert orders.schema["order_id"] == pl.Int64
    assert orders["paid_at"].to_list() == [rows[0]["paid_at"]]


@pytest.mark.parametrize("zone", [None, "UTC", "Asia/Shanghai"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_every_timestamp_unit_and_zone_loads_as_the_same_instant(
    tmp_path: Path, unit: str, zone: str | None
) -> None:
    # pandas writes ns with a UTC zone by default; DuckDB once stopped the run on it (issue 23)
    paid = dt.datetime(2026, 3, 1, 2, 3, 4, tzinfo=dt.UTC)
    rows = complete_rows("orders", [{"order_id": 3, "paid_at": paid}])
    table = pa.Table.from_pylist(rows)
    stamps = [r["paid_at"] if zone else r["paid_at"].replace(tzinfo=None) for r in rows]
    column = pa.array(stamps, pa.timestamp("us", zone)).cast(pa.timestamp(unit, zone))
    table = table.set_column(table.schema.get_field_index("paid_at"), "paid_at", column)
    folder = tmp_path / "orders" / "dt=2026-03-01"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "x.parquet")
    orders = load(tmp_path).orders.collect()
    assert orders["paid_at"].to_list() == [paid]


def test_nanoseconds_are_floored_to_the_microsecond(tmp_path: Path) -> None:
    # R3 of the oracle: finer than microseconds is truncated, zoned or naive alike
    later = ts(2026, 3, 1, 3)  # updated after payment, so neither row is quarantined
    rows = complete_rows("orders", [{"order_id": i, "updated_at": later} for i in (3, 4)])
    table = pa.Table.from_pylist(rows)
    base = int(rows[0]["paid_at"].timestamp()) * 10**9
    for zone in (None, "UTC"):
        column = pa.array([base + 999, base + 1_999], pa.timestamp("ns", zone))
        zoned = table.set_column(table.schema.get_field_index("paid_at"), "paid_at", column)
        folder = tmp_path / str(zone) / "orders" / "dt=2026-03-01"
        folder.mkdir(parents=True)
        pq.write_table(zoned, folder / "x.parquet")
        paid = load(tmp_path / str(zone)).orders.sort("order_id").collect()["paid_at"]
        assert [p.microsecond for p in paid] == [0, 1], zone


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "refunds" / "dt=2026-03-01"
    folder.mkdir(parents=True)
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot be read as Parquet"):
        load(tmp_path)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{}])
    pl.read_parquet(path).drop("paid_at").write_parquet(path)
    with pytest.raises(InputError, match=r"part-0\.parquet: missing required column 'paid_at'"):
        load(tmp_path)


def test_wrong_type_names_file_and_column(tmp_path: Path) -> None:
    path = write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{}])
    pl.read_parquet(path).with_columns(pl.col("amount_cents").cast(pl.String)).write_parquet(path)
    with pytest.raises(
        InputError, match=r"column 'amount_cents' has type (large_)?string, which cannot hold int"
    ):
        load(tmp_path)


def test_category_id_out_of_int32_range_stops_the_run(tmp_path: Path) -> None:
    path = write_partition(tmp_path, "orders", dt.date(2026, 3, 1), [{}])
    pl.read_parquet(path).with_columns(category_id=pl.lit(2**40, pl.Int64)).write_parquet(path)
    with pytest.raises(InputError, match=r"column 'category_id' has 1 value\(s\) outside"):
        load(tmp_path)


def test_bad_partition_folder_name(tmp_path: Path) -> None:
    (tmp_path / "orders" / "dt=2026-02-30").mkdir(parents=True)
    with pytest.raises(InputError, match=r"dt=2026-02-30: partition folder name"):
        load(tmp_path)


def test_missing_partitions_are_reported(tmp_path: Path) -> None:
    write_partition(tmp_path, "orders", D, [{"paid_at": ts(2026, 3, 19, 20), "order_id": 1}])
    loaded = load(tmp_path)
    assert len(loaded.missing_partitions["orders"]) == 29
    assert D.isoformat() not in loaded.missing_partitions["orders"]
