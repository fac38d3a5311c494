"""`make golden` accounts for what it changes: rows added, removed and changed, per column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from tests.golden import account, frame_change, table_path

DAY = dt.date(2026, 3, 20)
OLD = pl.DataFrame(
    {
        "shop_id": [1, 2, 3, 4],
        "score": [4.5, 4.0, 3.5, None],
        "band": ["4.5-4.8", "4.0-4.5", "<4.0", "unscored"],
    }
)
# shop 1 removed, shop 5 added, shop 2's band changed, shop 3's score moved by 1e-12 (within
# the tolerance), shop 4's null score still null
NEW = pl.DataFrame(
    {
        "shop_id": [2, 3, 4, 5],
        "score": [4.0, 3.5 + 1e-12, None, 4.9],
        "band": ["<4.0", "<4.0", "unscored", "4.8+"],
    }
)


def test_rows_added_removed_and_changed_by_key_with_values_changed_per_column() -> None:
    change = frame_change(OLD, NEW, ["shop_id"])
    assert (change.rows_before, change.rows_after) == (4, 4)
    assert (change.added, change.removed, change.changed) == (1, 1, 1)
    assert change.by_column == {"band": 1}
    assert not change.same_content
    assert change.summary() == "rows 4 -> 4: added 1, removed 1, changed 1"
    assert change.details() == ["band: 1 value changed"]


def test_a_float_within_1e_9_and_nulls_are_unchanged() -> None:
    nudged = OLD.with_columns(pl.col("score") + 1e-12)
    change = frame_change(OLD, nudged, ["shop_id"])
    assert (change.added, change.removed, change.changed, change.by_column) == (0, 0, 0, {})
    assert change.same_content


def test_without_a_key_whole_rows_are_compared() -> None:
    change = frame_change(OLD, NEW, None)
    # shop 4's row is the only one in both
    assert (change.added, change.removed, change.changed) == (3, 3, 0)
    assert change.summary() == "rows 4 -> 4: added 3, removed 3 (whole rows)"


def test_columns_added_removed_and_retyped_are_reported() -> None:
    new = NEW.drop("band").with_columns(pl.col("shop_id").cast(pl.Int32), rank=pl.lit(1))
    change = frame_change(OLD, new, ["shop_id"])
    assert change.details() == [
        "column rank added",
        "column band removed",
        "shop_id: type Int64 -> Int32",
    ]


def write(root: Path, table: str, day: dt.date, frame: pl.DataFrame) -> None:
    path = table_path(root, table, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)


def test_account_per_table_and_date(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    later = DAY + dt.timedelta(days=1)
    for root in (old, new):
        write(root, "shop_indicators", DAY, OLD)
        write(root, "shop_scores", DAY, OLD)
    write(new, "shop_scores", later, NEW)
    write(old, "shop_traffic_weights", DAY, OLD)
    write(new, "shop_traffic_weights", DAY, NEW)
    write(old, "quarantine", DAY, OLD)  # no key: whole rows
    write(new, "quarantine", DAY, NEW)
    lines = account(old, new)
    assert "shop_indicators: unchanged" in lines
    at = lines.index("shop_scores:")
    assert lines[at + 1 : at + 3] == [f"  {DAY}: unchanged", f"  {later}: new, 4 rows"]
    at = lines.index("shop_traffic_weights:")
    assert lines[at + 1 : at + 3] == [
        f"  {DAY}: rows 4 -> 4: added 1, removed 1, changed 1",
        "    band: 1 value changed",
    ]
    at = lines.index("quarantine:")
    assert lines[at + 1] == f"  {DAY}: rows 4 -> 4: added 3, removed 3 (whole rows)"
