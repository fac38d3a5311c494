"""Table comparison for tests: same rows by key, same values, floats within 1e-9."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import polars as pl

from scoring.contract import TABLE_KEYS

TOLERANCE = 1e-9


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return a == b


def table_differences(
    table: str, ours: Iterable[dict], theirs: Iterable[dict], columns: list[str], limit: int = 10
) -> list[str]:
    """Human-readable differences between two tables given as row dicts (empty: equal)."""
    keys = TABLE_KEYS[table]
    mine = {tuple(r[k] for k in keys): r for r in ours}
    other = {tuple(r[k] for k in keys): r for r in theirs}
    problems = []
    for key in sorted(mine.keys() - other.keys(), key=str)[:limit]:
        problems.append(f"{table} {key}: only in ours")
    for key in sorted(other.keys() - mine.keys(), key=str)[:limit]:
        problems.append(f"{table} {key}: only in theirs")
    for key in sorted(mine.keys() & other.keys(), key=str):
        for column in columns:
            a, b = mine[key].get(column), other[key].get(column)
            if not _same(a, b):
                problems.append(f"{table} {key} {column}: ours {a!r} theirs {b!r}")
        if len(problems) >= limit:
            break
    return problems


def frame_differences(table: str, ours: pl.DataFrame, theirs: pl.DataFrame) -> list[str]:
    """Differences between two versions of one published table (all columns of `ours`)."""
    if ours.columns != theirs.columns:
        return [f"{table}: columns differ: {ours.columns} vs {theirs.columns}"]
    if ours.schema != theirs.schema:
        return [f"{table}: types differ: {ours.schema} vs {theirs.schema}"]
    return table_differences(table, ours.to_dicts(), theirs.to_dicts(), ours.columns)


def run_differences(a: Any, b: Any) -> list[str]:
    """Differences between two `RunResult`s: the six tables, and what the manifests say was read."""
    problems = [p for t in TABLE_KEYS for p in frame_differences(t, a.tables[t], b.tables[t])]
    for part in ("inputs", "files", "rejected_by_reason"):
        if a.manifest[part] != b.manifest[part]:
            problems.append(f"manifest {part}: {a.manifest[part]} vs {b.manifest[part]}")
    return problems
