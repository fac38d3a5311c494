"""Writing a partition: the Parquet schema of a log file, in its canonical form or one of the
variants the spec allows (naive timestamps, other integer widths, column order, an extra or a
missing optional column, two files)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.devtools.generate.randomness import Rng
from scoring.contract import LOGS, LogSchema

_CANONICAL_INTS = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "TINYINT": pa.int8()}
_NARROW_INTS = {"shop_id": pa.int32(), "buyer_id": pa.int32(), "category_id": pa.int16()}


@dataclass(frozen=True)
class FileStyle:
    """How one partition is written: the canonical form, or one of the variants the spec allows."""

    naive_timestamps: bool = False
    integer_width: str = "canonical"  # or "wide" (all int64) or "narrow" (some ids int32/int16)
    reversed_columns: bool = False
    extra_column: bool = False
    split: bool = False  # two files, part-0 and part-1
    omit_optional: bool = False  # the optional columns (ship_to_region) left out: they read as null


def file_style(rng: Rng, log: str, day: int) -> FileStyle:
    """Most partitions are canonical; ~8% use naive timestamps, ~10% another integer width, ~10%
    reversed column order, ~5% an extra column, ~20% are split over two files, and ~15% leave the
    log's optional columns out (only orders have one)."""
    key = pl.Series("day", [day], dtype=pl.Int64)

    def draw(name: str) -> float:
        return rng.uniform(key, f"style:{log}:{name}")[0]

    width = draw("width")
    return FileStyle(
        naive_timestamps=draw("naive") < 0.08,
        integer_width="wide" if width < 0.05 else "narrow" if width < 0.1 else "canonical",
        reversed_columns=draw("order") < 0.1,
        extra_column=draw("extra") < 0.05,
        split=draw("split") < 0.2,
        omit_optional=draw("optional") < 0.15,
    )


def arrow_schema(schema: LogSchema, style: FileStyle = FileStyle()) -> pa.Schema:
    """The Parquet schema of a log file (canonical types from scoring.contract, or a variant)."""
    fields = []
    for column in schema.columns:
        if column.optional and style.omit_optional:
            continue
        if column.kind == "timestamp":
            arrow_type = pa.timestamp("us", tz=None if style.naive_timestamps else "UTC")
        elif column.kind == "bool":
            arrow_type = pa.bool_()
        elif column.kind == "string":
            arrow_type = pa.string()
        elif style.integer_width == "wide":
            arrow_type = pa.int64()
        elif style.integer_width == "narrow" and column.name in _NARROW_INTS:
            arrow_type = _NARROW_INTS[column.name]
        else:
            arrow_type = _CANONICAL_INTS[column.duck_type]
        fields.append(pa.field(column.name, arrow_type))
    return pa.schema(fields)


def _to_arrow(frame: pl.DataFrame, schema: LogSchema, style: FileStyle) -> pa.Table:
    target = arrow_schema(schema, style)
    table = frame.select(schema.column_names).to_arrow()
    columns = []
    for f in target:
        columns.append(table.column(f.name).cast(f.type))  # Int64 microseconds -> timestamp
    table = pa.Table.from_arrays(columns, schema=target)
    if style.extra_column:
        table = table.append_column("ingest_source", pa.array(["backfill"] * table.num_rows))
    if style.reversed_columns:
        table = table.select(list(reversed(table.column_names)))
    return table


def write_partition(
    out: Path, log: str, day_date: date, frame: pl.DataFrame, style: FileStyle, rng: Rng
) -> None:
    """Write one partition (replacing any Parquet file left there by an earlier run). An optional
    log (appeals) writes no partition for a day without rows: a missing partition means no rows
    that day (13.1)."""
    schema = LOGS[log]
    folder = out / log / f"dt={day_date.isoformat()}"
    for old in sorted(folder.glob("*.parquet")):
        old.unlink()
    if schema.optional and frame.height == 0:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return
    folder.mkdir(parents=True, exist_ok=True)
    table = _to_arrow(frame, schema, style)
    if style.split and table.num_rows > 1:
        mask = (rng.uniform(frame["_rk"], f"{log}:split") < 0.5).to_arrow()
        pq.write_table(table.filter(pc.invert(mask)), folder / "part-0.parquet")
        pq.write_table(table.filter(mask), folder / "part-1.parquet")
    else:
        pq.write_table(table, folder / "part-0.parquet")
