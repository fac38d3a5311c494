"""Upheld appeals (SCORING.md 13.2): a subject the platform found to be in bad faith counts nowhere.

The `appeals` log says, per appeal, which order, refund or session a merchant appealed and what
the platform decided. A subject with at least one `upheld` appeal among the run's partitions is
removed exactly as `is_abnormal` removes a row; the facts read that from the `appeal_upheld`
column that `mark_upheld` puts on the rows, and count what it removed for `appeals_upheld`.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

Subject = Literal["order", "refund", "session"]
SUBJECT_KEYS: dict[Subject, str] = {
    "order": "order_id",
    "refund": "refund_id",
    "session": "session_id",
}
UPHELD_SCHEMA = {"subject": pl.String, "subject_id": pl.Int64}


def upheld_subjects(appeals: pl.LazyFrame) -> pl.LazyFrame:
    """The distinct subjects with an upheld appeal among `appeals` (the current ones: one row
    per appeal_id, 2.5); a rejected appeal changes nothing, whatever its order."""
    return (
        appeals.filter(pl.col("outcome") == "upheld")
        .select("subject", "subject_id")
        .unique()
        .cast(UPHELD_SCHEMA)  # type: ignore[arg-type]
    )


def mark_upheld(rows: pl.LazyFrame, upheld: pl.LazyFrame, subject: Subject) -> pl.LazyFrame:
    """`rows` (orders, refunds or sessions) with `appeal_upheld`: the row's subject has an
    upheld appeal. Matched by the subject's id alone (13.2), whatever shop appealed."""
    key = SUBJECT_KEYS[subject]
    ids = upheld.filter(pl.col("subject") == subject).select(
        pl.col("subject_id").alias(key), _upheld=pl.lit(True)
    )
    return (
        rows.join(ids, on=key, how="left")
        .with_columns(appeal_upheld=pl.col("_upheld").fill_null(False))
        .drop("_upheld")
    )


def counts_nowhere() -> pl.Expr:
    """An order or refund removed from every population: flagged abnormal by the platform, or
    appealed with success. (A session has no `is_abnormal`: only its appeal removes it.)"""
    return pl.col("is_abnormal") | pl.col("appeal_upheld")
