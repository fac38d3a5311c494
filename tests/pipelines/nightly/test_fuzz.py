"""Fuzzing: raw rows with random nulls, unknown enums, extreme numbers and timestamps.

The pipeline either publishes tables that satisfy the spec's invariants or stops with a clear
error (exit 2 or 3) — never a traceback (exit 1), never a NaN or an out-of-range number.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.cli.main import main
from scoring.contract import LOGS, TABLE_SCHEMAS, Column
from tests.builders import _POLARS_TYPES
from tests.hypothesis_budget import examples

D = dt.date(2026, 3, 20)
INT_LIMITS = {"BIGINT": 2**63 - 1, "INTEGER": 2**31 - 1, "TINYINT": 127}
NEAR = st.datetimes(min_value=dt.datetime(2026, 2, 10), max_value=dt.datetime(2026, 3, 21, 6))
FAR = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1))


def values(column: Column) -> st.SearchStrategy:
    """Mostly plausible values, some extreme or invalid ones, sometimes null."""
    match column.kind:
        case "int":
            top = INT_LIMITS[column.duck_type]
            small = (
                st.integers(-2, 6)
                if column.name in ("review_rating", "satisfaction")
                else (
                    st.integers(0, 5) if column.name.endswith("_id") else st.integers(-10, 100_000)
                )
            )
            base = st.one_of(small, small, small, st.sampled_from([-top - 1, top, top // 3, 0]))
        case "timestamp":
            base = st.one_of(NEAR, NEAR, NEAR, FAR).map(lambda t: t.replace(tzinfo=dt.UTC))
        case "bool":
            base = st.booleans()
        case "string":
            known = st.sampled_from(column.enum or ("GD", "ZJ"))  # free text: a region
            base = st.one_of(known, st.sampled_from(["", "bogus", "QUALITY"]))
    return st.one_of(st.none(), base) if column.nullable else st.one_of(base, base, base, st.none())


@st.composite
def raw_logs(draw: st.DrawFn) -> dict[str, list[tuple[dt.date, dict]]]:
    logs = {}
    for name, schema in LOGS.items():
        rows = []
        for _ in range(draw(st.integers(0, 12))):
            day = D - dt.timedelta(days=draw(st.integers(0, 6)))
            rows.append((day, {c.name: draw(values(c)) for c in schema.columns}))
        logs[name] = rows
    return logs


def write(raw: Path, logs: dict[str, list[tuple[dt.date, dict]]]) -> None:
    for name, rows in logs.items():
        types = {c.name: _POLARS_TYPES[c.duck_type] for c in LOGS[name].columns}
        for day in sorted({d for d, _ in rows}):
            folder = raw / name / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            pl.DataFrame([r for d, r in rows if d == day], schema=types).write_parquet(
                folder / "part-0.parquet"
            )


def check_invariants(out: Path) -> None:
    tables = {t: pl.read_parquet(out / t / f"dt={D}" / "part-0.parquet") for t in TABLE_SCHEMAS}
    for name, table in tables.items():
        for column, dtype in table.schema.items():
            if dtype == pl.Float64:
                finite = table[column].drop_nulls()
                assert finite.is_finite().all(), (name, column)
    shops, ind = tables["shop_scores"], tables["shop_indicators"]
    assert shops["shop_id"].is_unique().all()
    assert ind.height == 12 * shops.height
    assert shops["score"].drop_nulls().is_between(3.0, 5.0).all()
    assert ind["indicator_score"].drop_nulls().is_between(3.0, 5.0).all()
    assert (ind["denominator"] >= 0).all()
    assert tables["item_scores"]["pxi"].drop_nulls().is_between(0.0, 100.0).all()
    assert (shops.filter(pl.col("status") == "scored")["valid_orders"] >= 1).all()
    weights = tables["shop_traffic_weights"]["weight"]
    assert weights.is_between(0.0, 2.0).all() and not any(math.isnan(w) for w in weights)


@settings(
    max_examples=examples(40, thorough_cap=400),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw_logs())
def test_fuzzed_raw_input_publishes_sane_tables_or_fails_clearly(logs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        write(raw, logs)
        argv = [
            "expscore",
            "run",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--date",
            str(D),
            "--force",
        ]
        old_argv = sys.argv
        sys.argv = argv
        try:
            with pytest.raises(SystemExit) as exit_info:
                main()
        finally:
            sys.argv = old_argv
        assert exit_info.value.code in (0, 2), f"exit {exit_info.value.code}"
        if exit_info.value.code == 0:
            check_invariants(out)
