"""Atomic partition publish: replace one date, leave its siblings, leave no debris."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pipelines.nightly.publish import (
    partition_dir,
    publish_partition,
    read_partition,
    write_json_atomic,
)

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
