"""Every common Parquet reader opens every published table, all dates at once (issue 21).

`dt` lives in the folder name only (`<table>/dt=YYYY-MM-DD/`). When it was also a column inside
each file, pandas and pyarrow refused the tables ("Unable to merge: Field dt has incompatible
types: date32[day] vs dictionary<values=string ...>"). Each reader here reads each table of the
sample's output (the golden dates) and must count, per date, the rows DuckDB counts; then the
one-liners of docs/analysts.md, run as written, must give `dt` as a date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines.ingest.load import sql_literal
from scoring.contract import PUBLISHED_TABLES
from tests.golden import ROOT, golden_dates

DOCS = ROOT / "docs" / "analysts.md"


@pytest.fixture(scope="module")
def out(sample_output: Path) -> Path:
    return sample_output


def duckdb_counts(folder: Path) -> Counter[str]:
    """Rows per `dt` as DuckDB reads the hive folders: the reference count."""
    glob = sql_literal(str(folder / "*" / "*.parquet"))
    rows = duckdb.sql(
        f"SELECT CAST(dt AS VARCHAR), count(*) FROM read_parquet({glob}, hive_partitioning = true)"
        " GROUP BY ALL"
    ).fetchall()
    return Counter({day: n for day, n in rows})


def _counts(values: list[object]) -> Counter[str]:
    return Counter(str(v) for v in values)


# The calls of the issue, exactly as a user types them: no schema, no options beyond hive.
READERS: dict[str, Callable[[Path], Counter[str]]] = {
    "pandas.read_parquet": lambda f: _counts(pd.read_parquet(f)["dt"].tolist()),
    "pyarrow.parquet.read_table": lambda f: _counts(pq.read_table(f).column("dt").to_pylist()),
    "pyarrow.dataset": lambda f: _counts(
        ds.dataset(f, partitioning="hive").to_table(columns=["dt"]).column("dt").to_pylist()
    ),
    "polars.scan_parquet": lambda f: _counts(
        pl.scan_parquet(f, hive_partitioning=True).select("dt").collect()["dt"].to_list()
    ),
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("table", PUBLISHED_TABLES)
def test_each_reader_reads_each_table_with_duckdbs_row_count(
    out: Path, table: str, reader: str
) -> None:
    folder = out / table
    expected = duckdb_counts(folder)
    assert sorted(expected) == [d.isoformat() for d in golden_dates()]  # several dates
    assert sum(expected.values()) > 0 or table == "shop_labels"
    assert READERS[reader](folder) == expected


def test_the_files_hold_no_dt_column(out: Path) -> None:
    """The date is the folder's: a `dt` column inside a file is what broke pandas and pyarrow."""
    for table in PUBLISHED_TABLES:
        for file in (out / table).glob("dt=*/*.parquet"):
            assert "dt" not in pq.read_schema(file).names, file


def _doc_block(heading: str) -> str:
    """The first ```python block after `heading` in docs/analysts.md."""
    text = DOCS.read_text("utf-8")
    start = text.index(heading)
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, heading
    return match.group(1)


def test_the_documented_one_liners_give_dt_as_a_date(out: Path, monkeypatch) -> None:
    """docs/analysts.md's block of one-liners runs as written (from the folder holding
    `output/`) and each reader gets `dt` typed as a date, with every date and row."""
    block = _doc_block("### One line per reader")
    (out.parent / "output").unlink(missing_ok=True)
    (out.parent / "output").symlink_to(out, target_is_directory=True)
    monkeypatch.chdir(out.parent)
    names: dict[str, object] = {}
    exec(compile(block, str(DOCS), "exec"), names)  # the doc's code, verbatim

    expected = duckdb_counts(out / "shop_scores")
    days = [d.isoformat() for d in golden_dates()]
    frame_pd = names["scores_pd"]
    assert isinstance(frame_pd, pd.DataFrame)
    assert all(isinstance(v, dt.date) for v in frame_pd["dt"])
    table_pa, dataset = names["scores_pa"], names["scores_ds"]
    assert isinstance(table_pa, pa.Table) and isinstance(dataset, ds.Dataset)
    assert table_pa.schema.field("dt").type == pa.date32()
    assert dataset.schema.field("dt").type == pa.date32()
    lazy = names["scores_pl"]
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect_schema()["dt"] == pl.Date
    relation = names["scores_db"]
    assert isinstance(relation, duckdb.DuckDBPyRelation)
    assert dict(zip(relation.columns, relation.dtypes, strict=True))["dt"] == "DATE"
    for counted in (
        _counts(frame_pd["dt"].tolist()),
        _counts(table_pa.column("dt").to_pylist()),
        _counts(dataset.to_table(columns=["dt"]).column("dt").to_pylist()),
        _counts(lazy.select("dt").collect()["dt"].to_list()),
        _counts([row[0] for row in relation.select("dt").fetchall()]),
    ):
        assert counted == expected
        assert sorted(counted) == days
