"""Reading the published output back (pipelines/published.py): which dates exist, a date
asked for, and tables or dates without a partition."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import InputError
from pipelines.published import published_dates, resolve_date, scan_days
from scoring.contract import PUBLISHED_SCHEMAS
from tests.pipelines.analyst_support import publish_day

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def shop(shop_id: int) -> dict:
    return {"shop_id": shop_id, "status": "insufficient_orders", "band": "unscored"}


def test_a_date_asked_for_is_the_date_when_it_was_published(tmp_path: Path) -> None:
    publish_day(tmp_path, D1, {"shop_scores": [shop(1)]})
    publish_day(tmp_path, D2, {"shop_scores": [shop(1)]})
    assert published_dates(tmp_path) == [D1, D2]
    assert resolve_date(tmp_path, D1) == D1
    assert resolve_date(tmp_path, D2) == D2
    assert resolve_date(tmp_path, None) == D2  # no date: the latest


def test_a_date_not_published_is_refused_naming_what_was(tmp_path: Path) -> None:
    publish_day(tmp_path, D1, {"shop_scores": [shop(1)]})
    with pytest.raises(InputError) as refused:
        resolve_date(tmp_path, D3)
    assert str(refused.value) == f"{tmp_path}: no shop_scores output for {D3} (published: {D1})"
    publish_day(tmp_path, D2, {"shop_scores": [shop(1)]})
    with pytest.raises(InputError) as refused:
        resolve_date(tmp_path, D3)
    assert str(refused.value) == (
        f"{tmp_path}: no shop_scores output for {D3} (published: {D1} .. {D2}, 2 dates)"
    )
    with pytest.raises(InputError, match=r": no published item_scores \(expected "):
        resolve_date(tmp_path, D1, "item_scores")  # dates are per table


def test_dates_without_a_partition_scan_as_an_empty_table_of_its_columns(tmp_path: Path) -> None:
    """A table none of whose dates has a partition reads as no rows, with the columns, types
    and order `run` publishes; dates that have one are stacked with `dt` from the folder."""
    publish_day(tmp_path, D1, {"shop_scores": [shop(1), shop(2)]})
    publish_day(tmp_path, D3, {"shop_scores": [shop(3)]})
    for table in ("quarantine", "shop_labels"):
        empty = scan_days(tmp_path, table, [D1, D2, D3]).collect()
        assert empty.height == 0
        assert empty.schema == pl.Schema(PUBLISHED_SCHEMAS[table])
    shops = scan_days(tmp_path, "shop_scores", [D1, D2, D3]).collect()
    assert shops.select("dt", "shop_id").rows() == [(D1, 1), (D1, 2), (D3, 3)]
    assert shops.schema == pl.Schema(PUBLISHED_SCHEMAS["shop_scores"])


def test_only_finished_dates_are_published(tmp_path: Path) -> None:
    """A date is published once its manifest is written, last: a partition without one (a run
    that did not finish publishing), a folder whose name is not a date, and a date folder
    without Parquet do not count."""
    publish_day(tmp_path, D1, {"shop_scores": [shop(1)]})
    publish_day(tmp_path, D2, {"shop_scores": [shop(1)]})
    (tmp_path / "manifests" / f"dt={D2}.json").unlink()
    (tmp_path / "shop_scores" / "dt=latest").mkdir()
    (tmp_path / "shop_scores" / f"dt={D3}").mkdir()
    publish_day(tmp_path, D3, {})  # the manifest alone
    assert published_dates(tmp_path) == [D1]
    assert published_dates(tmp_path, "item_scores") == []
