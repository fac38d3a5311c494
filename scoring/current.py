"""Current state (SCORING.md 2.5): which row of a key counts.

A change log (orders, refunds) counts each key's version with the greatest `(updated_at, dt)`;
an append-only log (logistics, sessions) counts one copy per key, the copy of the first `dt`.
Rows equal on key, version and `dt` are duplicates the spec lets any one of count; the tie is
broken on every other column, so that a rerun, a reordering or a split of the files always picks
the same row, and picking from the best stored row and a night's new rows gives the row a
from-scratch pick gives (the order is total, so the best of the best is the best of all).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def current_rows(
    rows: pl.LazyFrame | pl.DataFrame,
    key: str,
    version: str | None,
    columns: Sequence[str],
    prefer: str | None = None,
) -> pl.DataFrame:
    """One row per `key`: the first in the order of `current_order`.

    `version` is the change log's version column (None: an append-only log, first `dt` wins);
    `columns` are the log's other columns, the tie-breakers. `prefer` names a boolean column
    sorted last: between rows equal on everything else, the one where it is False wins (a
    stored row over an identical new copy, so that nothing is rewritten for a copy).
    Only keys with several rows are sorted: most keys have one.
    """
    frame = rows.lazy() if isinstance(rows, pl.DataFrame) else rows
    by, descending = current_order(key, version, columns)
    if prefer is not None:
        by, descending = [*by, prefer], [*descending, False]
    several = pl.col(key).is_duplicated()
    single = frame.filter(~several)
    chosen = (
        frame.filter(several)
        .sort(by, descending=descending, nulls_last=True)
        .unique(subset=key, keep="first", maintain_order=True)
    )
    return pl.concat([single, chosen]).collect()


def current_order(
    key: str, version: str | None, columns: Sequence[str]
) -> tuple[list[str], list[bool]]:
    """The sort under which a key's first row is its current one."""
    others = [c for c in columns if c not in (key, version, "dt")]
    if version is None:
        return [key, "dt", *others], [False, False, *[False] * len(others)]
    return [key, version, "dt", *others], [False, True, True, *[False] * len(others)]
