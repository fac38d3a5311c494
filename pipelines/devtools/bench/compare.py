"""Comparing published tables: two runs' tables of a date (identical, row for row?) and the
SQL peer's against expscore's (how far they agree, column by column)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.published import partition_files, scan_day
from scoring.contract import PUBLISHED_TABLES


def compare_outputs(a: Path, b: Path, day: dt.date) -> dict[str, Any]:
    """Are the published tables of `day` identical in `a` and `b`? Per table, as sets of rows.

    Row order carries no meaning in a partition, so both sides are sorted on every column first;
    types and values must then match exactly (floats bit for bit).
    """
    tables: dict[str, Any] = {}
    for table in PUBLISHED_TABLES:
        # `dt` from the folder name, as every reader gets it (the files hold no `dt`)
        left, right = (scan_day(root, table, day).collect() for root in (a, b))
        present = {bool(partition_files(root, table, day)) for root in (a, b)}
        same_schema = left.schema == right.schema and len(present) == 1
        identical = (
            same_schema
            and left.height == right.height
            and (
                left.height == 0
                or left.sort(left.columns, nulls_last=True).equals(
                    right.sort(right.columns, nulls_last=True), null_equal=True
                )
            )
        )
        tables[table] = {
            "identical": bool(identical),
            "rows": [left.height, right.height],
            "same_schema": same_schema,
        }
    return {"identical": all(t["identical"] for t in tables.values()), "tables": tables}


PEER_KEYS: dict[str, tuple[str, ...]] = {
    "shop_scores": ("shop_id",),
    "shop_indicators": ("shop_id", "indicator"),
    "item_scores": ("item_id",),
    "shop_traffic_weights": ("shop_id",),
    "item_traffic_weights": ("item_id",),
}
PEER_TOLERANCE = 1e-6
PEER_NOT_COLUMNS = ("dt", "rules_version")  # what every published table carries (10)


def compare_peer(
    peer: Path, published: Path, day: dt.date, tolerance: float = PEER_TOLERANCE
) -> dict[str, Any]:
    """How far the peer's tables agree with what expscore published for `day`.

    Per table: rows on each side and on both (by key); per column the peer computes, the share
    of rows (of the full outer join, so a row on one side only disagrees) whose values agree
    (floats within `tolerance`, both null agreeing), and for floats the largest difference
    where both have a value. Columns the peer leaves out (the shop `weight`) are not compared;
    `expscore_only` names them, so that a column expscore gains and the peer does not (as
    `appeals_upheld` and `excluded` were, v1.1) shows instead of passing unseen.
    """
    tables: dict[str, Any] = {}
    for table, key in PEER_KEYS.items():
        peer_file = peer / f"{table}.parquet"
        if not partition_files(published, table, day) or not peer_file.is_file():
            tables[table] = {"compared": False}
            continue
        ours = scan_day(published, table, day).collect()
        theirs = pl.read_parquet(peer_file)
        joined = ours.join(theirs, on=list(key), how="full", suffix="_peer", coalesce=True)
        both = ours.join(theirs.select(key), on=list(key), how="semi").height
        columns: dict[str, Any] = {}
        for column in theirs.columns:
            if column in key or column not in ours.columns:
                continue
            a, b = joined[column], joined[f"{column}_peer"]
            both_null = a.is_null() & b.is_null()
            if a.dtype.is_float() and b.dtype.is_float():
                diff = (a - b).abs()
                agree = both_null | (diff <= tolerance).fill_null(False)
                largest = diff.max()
                columns[column] = {
                    "agree_share": round(float(agree.mean() or 0.0), 6),
                    "max_abs_diff": None if largest is None else float(largest),
                }
            else:
                agree = both_null | (a.cast(pl.String) == b.cast(pl.String)).fill_null(False)
                columns[column] = {"agree_share": round(float(agree.mean() or 0.0), 6)}
        tables[table] = {
            "compared": True,
            "rows": {"expscore": ours.height, "peer": theirs.height, "both": both},
            "columns": columns,
            "expscore_only": sorted(
                c for c in ours.columns if c not in theirs.columns and c not in PEER_NOT_COLUMNS
            ),
        }
    shops = tables["shop_scores"]
    items = tables["item_scores"]
    return {
        "tolerance": tolerance,
        "score_agree_share": shops.get("columns", {}).get("score", {}).get("agree_share"),
        "score_max_abs_diff": shops.get("columns", {}).get("score", {}).get("max_abs_diff"),
        "pxi_agree_share": items.get("columns", {}).get("pxi", {}).get("agree_share"),
        "pxi_max_abs_diff": items.get("columns", {}).get("pxi", {}).get("max_abs_diff"),
        "all_agree": all(
            t.get("compared") and all(c["agree_share"] == 1.0 for c in t["columns"].values())
            for t in tables.values()
        ),
        "tables": tables,
    }
