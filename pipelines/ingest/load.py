"""Raw files into DuckDB: file checks, casts, reason codes (the SQL parts of the load).

`pipelines.state.ingest` puts these together per partition; the flow per log (SCORING.md 2 and
2.5, readings 12.1-12.2):

1. every file is checked on its own (readable Parquet, every required column present with a type
   that can hold the values); a bad file stops the run with an `InputError` naming file and column;
2. the files are cast to the canonical types and stacked, each row tagged with its partition `dt`,
   that partition's cutoff, its file and row number;
3. each row gets the first reason code it breaks; rejected rows go to the quarantine.

The good rows go to Polars as Arrow with UTC-aware timestamps; current state (2.5) is
`scoring.current`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputError
from scoring.contract import LOGS, Column, LogSchema
from scoring.window import partition_cutoff

PARTITION_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")

REASON_CODES: tuple[str, ...] = (
    "null_in_required_column",
    "unknown_enum_value",
    "rating_out_of_range",
    "negative_value",
    "updated_before_created",
    "at_or_after_partition_cutoff",
    "decision_time_mismatch",
)


@dataclass(kw_only=True)
class WindowLoad:
    """What the manifest and the gates report about a window's raw input."""

    quarantine: pl.DataFrame
    files: list[dict] = field(default_factory=list)  # path, log, dt, rows
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_current: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # log -> reason -> rows
    missing_partitions: dict[str, list[str]] = field(default_factory=dict)
    appeals_summary: dict = field(default_factory=dict)  # pipelines.state.appeals.appeals_report


# --------------------------------------------------------------------------------------------
# discovery and file checks


def list_partitions(raw: Path, log: str) -> dict[dt.date, Path]:
    """All `dt=YYYY-MM-DD` folders of a log; a folder with any other name is an input error."""
    base = raw / log
    if not base.is_dir():
        return {}
    partitions: dict[dt.date, Path] = {}
    for child in sorted(base.iterdir()):
        if not child.is_dir():
            continue
        match = PARTITION_RE.match(child.name)
        try:
            day = dt.date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day = None
        if day is None:
            raise InputError(
                f"{child}: partition folder name is not dt=YYYY-MM-DD with a valid date"
            )
        partitions[day] = child
    return partitions


def latest_partition_date(raw: Path) -> dt.date:
    """The newest `dt` present in any log: the default run date."""
    dates = [d for log in LOGS for d in list_partitions(raw, log)]
    if not dates:
        raise InputError(f"{raw}: no raw partitions found (expected <raw>/<log>/dt=YYYY-MM-DD/)")
    return max(dates)


def _type_holds(column: Column, arrow_type: pa.DataType) -> bool:
    if pa.types.is_null(arrow_type):
        return True  # an all-null column: its rows are quarantined if the column is required
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    match column.kind:
        case "int":
            return pa.types.is_integer(arrow_type)
        case "timestamp":
            return pa.types.is_timestamp(arrow_type)
        case "bool":
            return pa.types.is_boolean(arrow_type)
        case "string":
            return (
                pa.types.is_string(arrow_type)
                or pa.types.is_large_string(arrow_type)
                or (pa.types.is_string_view(arrow_type))
            )
    return False


def column_type(file_schema: pa.Schema, column: Column) -> pa.DataType:
    """The file's type of `column`; an optional column the file leaves out is all null."""
    if column.optional and column.name not in file_schema.names:
        return pa.null()
    return file_schema.field(column.name).type


def check_file(path: Path, schema: LogSchema) -> tuple[pa.Schema, int]:
    """Readable Parquet with every required column of a usable type, or an `InputError`.

    Returns the file's Arrow schema and its row count (from the footer). An optional column
    (`ship_to_region`) may be missing: it reads as null.
    """
    try:
        metadata = pq.read_metadata(path)
        file_schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot be read as Parquet ({exc})") from exc
    for column in schema.columns:
        if column.name not in file_schema.names and not column.optional:
            raise InputError(f"{path}: missing required column '{column.name}'")
        arrow_type = column_type(file_schema, column)
        if not _type_holds(column, arrow_type):
            raise InputError(
                f"{path}: column '{column.name}' has type {arrow_type}, "
                f"which cannot hold {column.kind} values ({column.duck_type})"
            )
    return file_schema, metadata.num_rows


# --------------------------------------------------------------------------------------------
# SQL building blocks


def column_list(names: Iterable[str]) -> str:
    """Column names as a SQL select list, each quoted: spec names are identifiers, not SQL."""
    return ", ".join(f'"{name}"' for name in names)


def sql_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(value)


def _cast(column: Column, arrow_type: pa.DataType) -> str:
    """Cast a file column to its canonical type; timestamps become naive UTC microseconds."""
    name = f'"{column.name}"'
    if pa.types.is_null(arrow_type):
        return f"CAST(NULL AS {column.duck_type})"
    if column.kind == "timestamp":
        if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
            # DuckDB has no epoch_us(TIMESTAMPTZ_NS) (pandas writes ns with a UTC zone by
            # default); through a naive ns timestamp, both ns kinds floor to the microsecond
            # exactly as epoch_us floors a naive ns timestamp
            return f"make_timestamp(epoch_us(make_timestamp_ns(epoch_ns({name}))))"
        return f"make_timestamp(epoch_us({name}))"
    if column.kind == "int":
        # all integers are widened to BIGINT first so that out-of-range ratings reach the
        # quarantine instead of failing a narrowing cast
        return f"CAST({name} AS BIGINT)"
    return f"CAST({name} AS {column.duck_type})"


def file_select(
    path: Path, source: str, schema: LogSchema, file_schema: pa.Schema, day: dt.date, tz: str
) -> str:
    columns = ", ".join(
        f'{_cast(c, column_type(file_schema, c))} AS "{c.name}"' for c in schema.columns
    )
    return (
        f"SELECT {columns}, {sql_literal(day)} AS dt, "
        f"{sql_literal(partition_cutoff(day, tz))} AS part_cutoff, "
        f"{sql_literal(source)} AS source_file, file_row_number AS source_row "
        f"FROM read_parquet({sql_literal(str(path))}, file_row_number = true)"
    )


def reject_reason_sql(schema: LogSchema) -> str:
    """A CASE giving the first reason code (12.2 order) a row breaks, or NULL for a good row."""
    cols = {c.name: c for c in schema.columns}
    rules: list[tuple[str, list[str]]] = [
        (
            "null_in_required_column",
            [f'"{c.name}" IS NULL' for c in schema.columns if not c.nullable],
        ),
        (
            "unknown_enum_value",
            [
                f'"{c.name}" NOT IN ({", ".join(map(sql_literal, c.enum))})'
                for c in schema.columns
                if c.enum
            ],
        ),
        (
            "rating_out_of_range",
            [f'"{n}" NOT BETWEEN 1 AND 5' for n in ("review_rating", "satisfaction") if n in cols],
        ),
        (
            "negative_value",
            [f'"{n}" < 0' for n in ("amount_cents", "first_response_seconds") if n in cols],
        ),
        (
            "updated_before_created",
            [f'updated_at < "{n}"' for n in ("paid_at", "requested_at") if n in cols],
        ),
        ("at_or_after_partition_cutoff", [f'"{schema.version_column}" >= part_cutoff']),
        (
            "decision_time_mismatch",
            ["(seller_decision IS NULL) <> (decided_at IS NULL)"]
            if "seller_decision" in cols  # the appeals' decided_at has no decision beside it
            else [],
        ),
    ]
    assert [code for code, _ in rules] == list(REASON_CODES)
    # NULL comparisons are false in a CASE, so a nullable column only fails when it has a value
    whens = [f"WHEN {' OR '.join(conds)} THEN '{code}'" for code, conds in rules if conds]
    return "CASE " + " ".join(whens) + " END"


def quarantine_select(log: str, schema: LogSchema, table: str) -> str:
    """The rejected rows of `table` as quarantine rows: reason, source, key and the row as JSON."""
    row_struct = ", ".join(f'"{c}" := "{c}"' for c in schema.column_names)
    return (
        f"SELECT {sql_literal(log)} AS log, reject_reason AS reason, dt AS source_dt, "
        f'source_file, source_row, "{schema.key}" AS record_key, '
        f"to_json(struct_pack({row_struct})) AS row "
        f"FROM {table} WHERE reject_reason IS NOT NULL"
    )


def unreadable_file_error(
    con: duckdb.DuckDBPyConnection, paths: list[Path], selects: list[str], exc: duckdb.Error
) -> InputError:
    """Find which file broke the scan (a corrupt page behind a valid footer), file by file.

    Only runs on the failure path, so the nightly run pays nothing for it.
    """
    for path, select in zip(paths, selects, strict=True):
        try:
            con.sql(f"SELECT * FROM ({select})").fetchall()
        except duckdb.Error as file_exc:
            first_line = str(file_exc).strip().splitlines()[0]
            return InputError(f"{path}: cannot be read as Parquet ({first_line})")
    return InputError(f"raw files could not be read together: {str(exc).splitlines()[0]}")


def check_integer_ranges(
    con: duckdb.DuckDBPyConnection, path: Path, schema: LogSchema, file_schema: pa.Schema
) -> None:
    """An integer column whose values do not fit the canonical type stops the run (2.5).

    Ratings are exempt: any integer there is a value, and values outside 1-5 are quarantined.
    """
    limits = {"BIGINT": (-(2**63), 2**63 - 1), "INTEGER": (-(2**31), 2**31 - 1)}
    checks = []
    for column in schema.columns:
        arrow_type = column_type(file_schema, column)
        if column.kind != "int" or column.duck_type not in limits or pa.types.is_null(arrow_type):
            continue
        lo, hi = limits[column.duck_type]
        wide = (
            arrow_type.bit_width > 32
            if column.duck_type == "INTEGER"
            else (pa.types.is_unsigned_integer(arrow_type) and arrow_type.bit_width == 64)
        )
        if wide:
            checks.append(
                (
                    column.name,
                    f'count(*) FILTER (WHERE "{column.name}" < {lo} OR "{column.name}" > {hi})',
                )
            )
    if not checks:
        return
    counts = con.sql(
        f"SELECT {', '.join(sql for _, sql in checks)} FROM read_parquet({sql_literal(str(path))})"
    ).fetchall()[0]
    for (name, _), bad in zip(checks, counts, strict=True):
        if bad:
            column = schema.column(name)
            raise InputError(
                f"{path}: column '{name}' has {bad} value(s) outside the range of "
                f"{column.duck_type}"
            )


def canonical(frame: pl.DataFrame, schema: LogSchema) -> pl.LazyFrame:
    """The log's columns of `frame` cast to their canonical types; timestamps become UTC-aware."""
    casts = []
    for name in frame.columns:
        if name not in schema.column_names:
            continue
        column = schema.column(name)
        match column.kind:
            case "timestamp":
                casts.append(pl.col(name).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
            case "int":
                dtype = {"BIGINT": pl.Int64, "INTEGER": pl.Int32, "TINYINT": pl.Int8}[
                    column.duck_type
                ]
                casts.append(pl.col(name).cast(dtype))
            case "bool":
                casts.append(pl.col(name).cast(pl.Boolean))
            case "string":
                casts.append(pl.col(name).cast(pl.String))
    return frame.lazy().with_columns(casts)
