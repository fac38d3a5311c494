"""`expscore query`: SQL over the published tables, with DuckDB.

Every table under `--out` becomes a view over all its date partitions, so an analyst writes
`SELECT … FROM shop_scores WHERE dt = DATE '2026-10-10'` without knowing the layout. `dt` is read
from the hive folder name with an explicit DATE type (never inferred, engineering notes), and a
filter on it prunes whole partitions. `manifests` is a view of the run manifests: the date, whether
it was held, the provenance of each run as columns (run id, code version, start and end, rules
version and hash, the run id of the D-1 it built on) and the whole manifest as JSON.

Results come back as Arrow, never through Python objects: DuckDB 2's `.fetchall()` needs pytz for
zone-aware timestamps, and Arrow keeps types exact for `--parquet`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import QUERY_MAX_ROWS
from pipelines.errors import InputError
from pipelines.ingest.load import sql_literal
from pipelines.layout import MANIFEST_DIR, partition_dir
from pipelines.published import published_dates
from scoring.contract import PUBLISHED_TABLES

MANIFESTS_VIEW = "manifests"
# The manifest keys the `manifests` view has as columns, with their SQL types.
MANIFEST_COLUMNS: dict[str, str] = {
    "status": "VARCHAR",
    "run_id": "VARCHAR",
    "code_version": "VARCHAR",
    "started_at": "TIMESTAMPTZ",
    "finished_at": "TIMESTAMPTZ",
    "rules_version": "VARCHAR",
    "rules_sha256": "VARCHAR",
    "previous_run_id": "VARCHAR",
}


def view_sql(out: Path) -> dict[str, str]:
    """`CREATE VIEW` statements for every table of `out` that has at least one partition."""
    statements = {}
    for table in PUBLISHED_TABLES:
        dates = published_dates(out, table)
        if not dates:
            continue
        # the published dates only: a date whose run did not finish publishing is left out
        globs = ", ".join(
            sql_literal(str(partition_dir(out, table, day) / "*.parquet")) for day in dates
        )
        statements[table] = (
            f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet([{globs}], "
            f"hive_partitioning = true, hive_types = {{'dt': DATE}})"
        )
    if any((Path(out) / MANIFEST_DIR).glob("dt=*.json")):
        # dt=D.json for a published run, dt=D.held.json for a run a quality gate held
        glob = sql_literal(str(Path(out) / MANIFEST_DIR / "dt=*.json"))
        day = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
        # provenance as typed columns (null in manifests written before they had it), and the
        # whole manifest as JSON for the rest
        columns = ", ".join(
            f"CAST(manifest->>'{key}' AS {sql_type}) AS {key}"
            for key, sql_type in MANIFEST_COLUMNS.items()
        )
        statements[MANIFESTS_VIEW] = (
            f"CREATE OR REPLACE VIEW {MANIFESTS_VIEW} AS SELECT dt, held, {columns}, manifest "
            f"FROM (SELECT CAST(regexp_extract(filename, 'dt=({day})', 1) AS DATE) AS dt, "
            f"filename LIKE '%.held.json' AS held, CAST(content AS JSON) AS manifest "
            f"FROM read_text({glob}) "
            f"WHERE regexp_matches(filename, 'dt={day}([.]held)?[.]json$'))"
        )
    return statements


# Statements a query may run: it reads; COPY, ATTACH, INSTALL, CREATE, SET, PRAGMA ... do not pass.
READ_ONLY = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def connect(out: Path) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB over the views of `out`: it reads inside `out` and nowhere else.

    After the views exist, file access is limited to the output folder and the configuration is
    locked, so a query cannot read `/etc/passwd`, install or load an extension, or switch the
    limits off again; `run_query` refuses every statement that is not a read, so nothing can be
    written into the published tables either (issue 23).
    """
    statements = view_sql(out)
    if not statements:
        raise InputError(f"{out}: no published tables to query (run `expscore run` first)")
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for statement in statements.values():
        con.sql(statement)
    folder = str(Path(out).resolve()) + "/"
    con.sql(f"SET allowed_directories = [{sql_literal(folder)}]")
    con.sql("SET enable_external_access = false")
    con.sql("SET lock_configuration = true")
    return con


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def run_query(out: Path, sql: str) -> pa.Table | None:
    """The result of `sql` (the last statement when there are several) as an Arrow table;
    None for a statement that returns nothing. Bad SQL is an InputError (exit 2)."""
    if not sql.strip():
        raise InputError("query: empty SQL")
    con = connect(out)
    try:
        statements = con.extract_statements(sql)
        for statement in statements:
            if statement.type not in READ_ONLY:
                kind = statement.type.name
                raise InputError(
                    f"query: only SELECT (with DESCRIBE, SUMMARIZE, EXPLAIN) is allowed; "
                    f"refused a {kind} statement: {_one_line(Exception(statement.query))}"
                )
        relation = None
        for statement in statements:
            relation = con.sql(statement.query)
        return None if relation is None else relation.to_arrow_table()
    except duckdb.Error as exc:
        raise InputError(f"query: {_one_line(exc)}") from exc
    finally:
        con.close()


def format_table(result: pa.Table, max_rows: int = QUERY_MAX_ROWS) -> str:
    """The result as an aligned text table (Polars layout), with its row count."""
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=-1,
        tbl_width_chars=250,
        fmt_str_lengths=60,
        tbl_hide_dataframe_shape=True,
    ):
        text = str(frame)
    shown = "" if frame.height <= max_rows else f", showing {max_rows} (use --csv for all)"
    return f"{text}\n{frame.height} rows{shown}"


def write_csv(result: pa.Table, stream: TextIO | None = None) -> None:
    """CSV with a header to `stream` (stdout by default); nested columns cannot be CSV."""
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if nested:
        raise InputError(
            f"query: column(s) {', '.join(nested)} are nested and cannot be written as CSV; "
            f"use --parquet or cast them to text in the SQL"
        )
    (stream or sys.stdout).write(frame.write_csv())


def write_parquet(result: pa.Table, path: Path) -> None:
    """The result as one Parquet file, types kept exactly as DuckDB returned them."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise InputError(f"query: --parquet {path}: folder {path.parent} does not exist")
    pq.write_table(result, path, compression="zstd")
