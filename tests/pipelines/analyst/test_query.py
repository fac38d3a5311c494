"""`expscore query` on the sample: views over every table, table / CSV / Parquet output, errors,
and every SQL example of docs/analysts.md."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipelines.analyst.query import run_query, view_sql
from scoring.contract import PUBLISHED_TABLES
from tests.golden import ROOT, golden_dates
from tests.pipelines.analyst_support import cli

DOCS = ROOT / "docs" / "analysts.md"
BANDS_SQL = "SELECT band, count(*) AS shops FROM shop_scores WHERE dt = DATE '{day}' GROUP BY band"


@pytest.fixture(scope="module")
def out(sample_output: Path) -> Path:
    return sample_output


def expected_bands(out: Path, day: dt.date) -> pl.DataFrame:
    scores = pl.read_parquet(out / "shop_scores" / f"dt={day}" / "part-0.parquet")
    return scores.group_by("band").agg(shops=pl.len().cast(pl.Int64)).sort("band")


def test_every_table_and_the_manifests_are_views_with_dt_as_date(out: Path) -> None:
    assert set(view_sql(out)) == {*PUBLISHED_TABLES, "manifests"}
    for table in [*PUBLISHED_TABLES, "manifests"]:
        result = run_query(out, f"SELECT DISTINCT dt FROM {table} ORDER BY dt")
        assert result is not None
        frame = pl.from_arrow(result)
        assert frame.schema["dt"] == pl.Date, table
        assert frame["dt"].to_list() == golden_dates(), table


def test_table_output(monkeypatch, capsys, out: Path) -> None:
    day = golden_dates()[-1]
    code, stdout, _ = cli(
        monkeypatch, capsys, "query", "--out", str(out), BANDS_SQL.format(day=day)
    )
    assert code == 0
    for band, shops in expected_bands(out, day).iter_rows():
        assert re.search(rf"│ {re.escape(band)}\s+┆ {shops}\s+│", stdout), band
    assert stdout.rstrip().endswith("5 rows")


def test_csv(monkeypatch, capsys, out: Path) -> None:
    day = golden_dates()[-1]
    sql = BANDS_SQL.format(day=day) + " ORDER BY band"
    code, stdout, _ = cli(monkeypatch, capsys, "query", "--out", str(out), "--csv", sql)
    assert code == 0
    assert stdout.splitlines()[0] == "band,shops"
    assert pl.read_csv(io.StringIO(stdout)).equals(expected_bands(out, day))


def test_parquet(monkeypatch, capsys, out: Path, tmp_path: Path) -> None:
    target = tmp_path / "result.parquet"
    sql = "SELECT dt, shop_id, score FROM shop_scores WHERE status = 'scored' ORDER BY dt, shop_id"
    code, stdout, _ = cli(
        monkeypatch, capsys, "query", "--out", str(out), "--parquet", str(target), sql
    )
    assert code == 0 and stdout.startswith(f"wrote {target}: ")
    written = pl.read_parquet(target)
    assert written.schema == pl.Schema({"dt": pl.Date, "shop_id": pl.Int64, "score": pl.Float64})
    published = (
        pl.read_parquet(out / "shop_scores", hive_partitioning=True, hive_schema={"dt": pl.Date})
        .filter(pl.col("status") == "scored")
        .select("dt", "shop_id", "score")
        .sort("dt", "shop_id")
    )
    assert written.equals(published)
    assert pq.read_metadata(target).num_rows == published.height


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC band FROM shop_scores", "query: Parser Error: syntax error"),
        ("SELECT * FROM no_such_table", "query: Catalog Error"),
        ("SELECT no_such_column FROM shop_scores", "query: Binder Error"),
        ("   ", "query: empty SQL"),
    ],
)
def test_bad_sql_exits_2_on_one_line(
    monkeypatch, capsys, out: Path, sql: str, message: str
) -> None:
    code, stdout, err = cli(monkeypatch, capsys, "query", "--out", str(out), sql)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith(f"expscore: error: {message}")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        # each of these changed a published date, read a file outside the output, or attached a
        # database before `query` was read-only (issue 23)
        ("COPY (SELECT * FROM shop_scores WHERE false) TO '{target}'", "refused a COPY"),
        ("ATTACH '{folder}/x.duckdb' AS x", "refused a ATTACH"),
        ("INSTALL httpfs", "refused a"),
        ("SET enable_external_access = true", "refused a"),
        ("CREATE TABLE t AS SELECT 1", "refused a CREATE"),
        ("SELECT 1; COPY (SELECT 1) TO '{target}'", "refused a COPY"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
        ("SELECT * FROM read_text('/etc/hostname')", "Permission Error"),
    ],
)
def test_query_is_read_only(monkeypatch, capsys, out: Path, sql: str, message: str) -> None:
    day = golden_dates()[-1]
    target = out / "shop_scores" / f"dt={day}" / "part-0.parquet"
    before = target.read_bytes()
    query = sql.format(target=target, folder=out)
    code, stdout, err = cli(monkeypatch, capsys, "query", "--out", str(out), query)
    assert code == 2 and stdout == ""
    assert err.startswith("expscore: error: query: ") and message in err, err
    assert target.read_bytes() == before
    assert not (out / "x.duckdb").exists()


def test_a_read_only_query_still_reads_every_view(out: Path) -> None:
    result = run_query(out, "DESCRIBE shop_scores; SELECT count(*) AS n FROM manifests")
    assert result is not None and result.column_names == ["n"]
    assert result.column("n").to_pylist() == [len(golden_dates())]


def test_no_output_and_conflicting_options_exit_2(monkeypatch, capsys, out, tmp_path) -> None:
    code, _, err = cli(monkeypatch, capsys, "query", "--out", str(tmp_path), "SELECT 1")
    assert code == 2 and "no published tables" in err
    code, _, err = cli(
        monkeypatch,
        capsys,
        "query",
        "--out",
        str(out),
        "--csv",
        "--parquet",
        "x.parquet",
        "SELECT 1",
    )
    assert code == 2 and "not both" in err


def test_manifests_view(out: Path) -> None:
    result = run_query(
        out,
        "SELECT dt, held, manifest->>'rules_version' AS v, "
        "CAST(manifest->'outputs'->'shop_scores'->>'rows' AS BIGINT) AS shops "
        "FROM manifests ORDER BY dt",
    )
    frame = pl.from_arrow(result)
    assert frame["v"].to_list() == ["2026.2"] * len(golden_dates())
    assert frame["held"].to_list() == [False] * len(golden_dates())
    assert frame["shops"].to_list() == [299] * len(golden_dates())


def doc_sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_docs_have_five_worked_questions() -> None:
    assert len(doc_sql_blocks()) >= 6  # the five questions and the plain DuckDB example


@pytest.mark.parametrize("number", range(len(doc_sql_blocks())))
def test_every_sql_example_of_the_docs_runs(out: Path, number: int) -> None:
    # the plain DuckDB example reads 'output/...' relative to the project
    sql = doc_sql_blocks()[number].replace("'output/", f"'{out}/")
    result = run_query(out, sql)
    assert result is not None and result.num_rows > 0, sql
