"""Atomic partition publish: replace one date, leave its siblings, leave no debris."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipelines.layout import partition_dir
from pipelines.nightly import publish
from pipelines.nightly.publish import publish_partition, read_partition, write_json_atomic

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


def test_publish_replaces_only_its_own_date(tmp_path: Path) -> None:
    publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [1]}))
    publish_partition(tmp_path, "t", D2, pl.DataFrame({"x": [2]}))
    publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [10, 11]}))
    assert read_partition(tmp_path, "t", D1)["x"].to_list() == [10, 11]
    assert read_partition(tmp_path, "t", D2)["x"].to_list() == [2]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["dt=2026-03-01", "dt=2026-03-02"]


def test_stale_staging_is_cleaned_and_invisible(tmp_path: Path) -> None:
    stale = tmp_path / "t" / ".staging-dt=2026-03-01-deadbeef"
    stale.mkdir(parents=True)
    (stale / "part-0.parquet").write_bytes(b"half written")
    publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [1]}))
    assert not stale.exists()
    assert [p.name for p in partition_dir(tmp_path, "t", D1).iterdir()] == ["part-0.parquet"]


def test_missing_partition_reads_as_none(tmp_path: Path) -> None:
    assert read_partition(tmp_path, "t", D1) is None


def test_json_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m" / "x.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert path.read_text().strip().endswith("}")
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


@pytest.mark.parametrize("platform", ["no renameat2", "renameat2 refuses the exchange"])
def test_without_an_atomic_exchange_two_renames_replace_the_partition(
    monkeypatch, tmp_path: Path, platform: str
) -> None:
    """Where the swap is not available (not Linux, or a file system without RENAME_EXCHANGE)
    the old partition is renamed aside, the new one into place, and the old one removed."""
    monkeypatch.setattr(
        publish, "_renameat2", None if platform == "no renameat2" else lambda *args: -1
    )
    publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [1]}))
    publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [2, 3]}))
    assert read_partition(tmp_path, "t", D1)["x"].to_list() == [2, 3]
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["dt=2026-03-01"]  # nothing retired


@pytest.mark.parametrize("error", [OSError("no libc"), AttributeError("renameat2")])
def test_renameat2_is_none_where_the_c_library_lacks_it(monkeypatch, error: Exception) -> None:
    def cdll(*args, **kwargs):
        if isinstance(error, OSError):
            raise error
        return object()  # a C library without the symbol: the attribute lookup fails

    monkeypatch.setattr(publish.ctypes, "CDLL", cdll)
    assert publish._load_renameat2() is None


def test_a_dt_column_must_say_the_partition_s_date_and_is_not_written(tmp_path: Path) -> None:
    """`dt` lives in the folder name only (issue 21): a frame's `dt` column is checked against
    the date and dropped; rows of another date are refused and nothing is published."""
    with pytest.raises(ValueError, match=r"^t: rows of another date than 2026-03-01 in its"):
        publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [1, 2], "dt": [D1, D2]}))
    assert not partition_dir(tmp_path, "t", D1).exists()
    target = publish_partition(tmp_path, "t", D1, pl.DataFrame({"x": [1, 2], "dt": [D1, D1]}))
    assert pl.read_parquet(target / "part-0.parquet").columns == ["x"]
    assert read_partition(tmp_path, "t", D1).to_dicts() == [
        {"x": 1, "dt": D1},
        {"x": 2, "dt": D1},
    ]
    empty = pl.DataFrame({"x": [], "dt": []}, schema={"x": pl.Int64, "dt": pl.Date})
    target = publish_partition(tmp_path, "t", D2, empty)  # no rows: no date to disagree
    assert pl.read_parquet(target / "part-0.parquet").columns == ["x"]
