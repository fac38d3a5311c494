"""Hypothesis properties over random small marketplaces, through the whole pipeline."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.nightly.run import load_rules, run_day
from pipelines.published import scan_day
from scoring.contract import LOGS, PUBLISHED_SCHEMAS, TABLE_SCHEMAS
from tests.builders import DEFAULT_RULES_PATH, default_rules_dict, window_is_empty
from tests.compare import frame_differences, table_differences
from tests.hypothesis_budget import examples
from tests.marketplace import RUN_DATE, exemptions, marketplaces, write_marketplace
from tests.oracle.reference import reference_tables

RULES = load_rules(DEFAULT_RULES_PATH)
# a low minimum so that random small shops are scored and every branch is exercised
SMALL_RULES_DICT = {**default_rules_dict(), "min_orders": 3, "min_item_orders": 2}
# each example runs the whole pipeline: `make test-thorough` runs up to 200
PIPELINE = settings(
    max_examples=examples(15, thorough_cap=200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def small_rules():
    from scoring.rules import parse_rules

    return parse_rules(SMALL_RULES_DICT, "small")


def run_tables(
    raw: Path, out: Path, rules=None, day: dt.date = RUN_DATE
) -> dict[str, pl.DataFrame]:
    """The run's tables; for a window with no partition of any log, the run refuses (exit 2,
    nothing published) and the tables are empty, which is what the oracle gives for it."""
    rules = rules or small_rules()
    if window_is_empty(raw, rules, day):
        with pytest.raises(InputError, match="no partition of any log in the window"):
            run_day(raw, out, rules, day, force=True)
        return {t: pl.DataFrame(schema=PUBLISHED_SCHEMAS[t]) for t in TABLE_SCHEMAS}
    return run_day(raw, out, rules, day, force=True).tables


@PIPELINE
@given(marketplaces())
def test_matches_independent_reference(logs) -> None:
    """The vectorised pipeline agrees with the row-by-row oracle on every value, two days on."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        write_marketplace(raw, logs)
        previous = None
        for day in (RUN_DATE - dt.timedelta(days=1), RUN_DATE):
            ours = run_tables(raw, out, day=day)
            theirs = reference_tables(raw, day, SMALL_RULES_DICT, previous)
            previous = {k: theirs[k] for k in ("shop_labels", "shop_traffic_weights")}
            problems = [
                p
                for table, schema in TABLE_SCHEMAS.items()
                for p in table_differences(
                    table, ours[table].to_dicts(), theirs[table], list(schema)
                )
            ]
            if problems and os.environ.get("EXPSCORE_DUMP"):
                shutil.rmtree(os.environ["EXPSCORE_DUMP"], ignore_errors=True)
                shutil.copytree(raw, os.environ["EXPSCORE_DUMP"])
            assert not problems, "\n".join(problems)


@PIPELINE
@given(marketplaces(), exemptions())
def test_matches_independent_reference_with_exemptions(logs, entries) -> None:
    """With random exemptions in the rules (and the marketplace's appeals and regions), the
    pipeline agrees with the oracle on every value, `excluded` and `appeals_upheld` included."""
    from scoring.rules import parse_rules

    rules_dict = {**SMALL_RULES_DICT, "exemptions": entries}
    rules = parse_rules(rules_dict, "exemptions")
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        write_marketplace(raw, logs)
        ours = run_tables(raw, out, rules)
        theirs = reference_tables(raw, RUN_DATE, rules_dict, None)
        problems = [
            p
            for table, schema in TABLE_SCHEMAS.items()
            for p in table_differences(table, ours[table].to_dicts(), theirs[table], list(schema))
        ]
        assert not problems, "\n".join(problems)


@PIPELINE
@given(marketplaces(), st.integers(2, 4), st.integers(1, 10_000))
def test_invariant_to_row_order_file_split_and_duplicates(logs, files, order_key) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = run_tables(write_marketplace(Path(tmp) / "raw0", logs), Path(tmp) / "out0")
        duplicated = {log: rows + rows[: len(rows) // 2] for log, rows in logs.items()}
        write_marketplace(
            Path(tmp) / "raw1", duplicated, files_per_partition=files, order_key=order_key
        )
        other = run_tables(Path(tmp) / "raw1", Path(tmp) / "out1")
        for table in TABLE_SCHEMAS:
            assert not frame_differences(table, base[table], other[table])


@PIPELINE
@given(marketplaces())
def test_scores_within_bounds(logs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_marketplace(Path(tmp) / "raw", logs)
        t = run_tables(Path(tmp) / "raw", Path(tmp) / "out")
    shops, ind = t["shop_scores"], t["shop_indicators"]
    assert shops["score"].drop_nulls().is_between(3.0, 5.0).all()
    for dim in ("product_score", "logistics_score", "service_score"):
        assert shops[dim].drop_nulls().is_between(3.0 - 1e-9, 5.0 + 1e-9).all()
    assert ind["indicator_score"].drop_nulls().is_between(3.0, 5.0).all()
    assert (
        ind.filter(pl.col("raw_value").is_not_null())["raw_value"]
        .filter(~ind.filter(pl.col("raw_value").is_not_null())["indicator"].str.ends_with("hours"))
        .is_between(0.0, float("inf"))
        .all()
    )
    assert shops["peer_percentile"].drop_nulls().is_between(0.0, 1.0).all()
    assert t["item_scores"]["pxi"].drop_nulls().is_between(0.0, 100.0).all()
    assert ind.height == 12 * shops.height
    scored = shops.filter(pl.col("status") == "scored")
    assert scored["score"].null_count() == 0
    # points lost explain the score: sum + score - bonus = 5 unless the cap binds
    lost = ind.group_by("shop_id").agg(lost=pl.col("points_lost").sum())
    check = scored.join(lost, on="shop_id").filter(pl.col("score") < 5.0)
    residual = (check["lost"] + check["score"] - check["bonus"] - 5.0).abs()
    assert check.is_empty() or residual.max() < 1e-9, check.filter(residual >= 1e-9)


@settings(
    max_examples=examples(5, thorough_cap=100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(marketplaces())
def test_rerun_gives_identical_tables(logs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        write_marketplace(raw, logs)
        first = run_tables(raw, out)
        second = run_tables(raw, out)
        if window_is_empty(raw, small_rules(), RUN_DATE):
            assert not out.exists() or not (out / "shop_scores").exists()  # nothing published
            return
        # as readers see them: `dt` from the folder name, not a column of the file
        published = {t: scan_day(out, t, RUN_DATE).collect() for t in TABLE_SCHEMAS}
    for table in TABLE_SCHEMAS:
        assert first[table].equals(second[table])
        assert published[table].equals(second[table])


ID_OFFSET = 1_000_000
TWIN = 9


def _twin_of_shop_one(logs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Shop 9: an exact copy of shop 1 under new ids (same categories, amounts, times, and
    appeals of the copied subjects)."""
    shop_one_orders = {r["order_id"] for r in logs["orders"] if r["shop_id"] == 1}
    twin: dict[str, list[dict]] = {}
    for log, rows in logs.items():
        # an appeal's subject is an order, refund or session id: the twin's appeals name its own
        ids = (
            [c for c in ("order_id", "item_id", "subject_id", LOGS[log].key) if c in rows[0]]
            if rows
            else []
        )
        mine = [r for r in rows if r["shop_id"] == 1 or r.get("order_id") in shop_one_orders]
        twin[log] = [
            {**r, "shop_id": TWIN, **{c: r[c] + ID_OFFSET for c in ids if r[c] is not None}}
            for r in mine
        ]
    return twin


def _low_rating(column: str, worst_kept: int):
    return lambda r: r[column] is not None and r[column] <= worst_kept


# each changes exactly one shop indicator, in the better direction (or nothing at all)
IMPROVEMENTS = {
    "review": ("orders", _low_rating("review_rating", 2), {"review_rating": 5}),
    "satisfaction": ("cs_sessions", _low_rating("satisfaction", 3), {"satisfaction": 5}),
    "response": (
        "cs_sessions",
        lambda r: (r["first_response_seconds"] or 999) > 180,
        {"first_response_seconds": 30},
    ),
    "refusal": (
        "refunds",
        lambda r: r["seller_decision"] == "refused",
        {"seller_decision": "agreed"},
    ),
    "door": (
        "logistics",
        lambda r: r["event_type"] == "delivered" and not r["door_delivery"],
        {"door_delivery": True},
    ),
    "escalation": (
        "cs_sessions",
        lambda r: r["escalated_to_platform"],
        {"escalated_to_platform": False},
    ),
}


def linear_rules():
    """Knots spanning every possible value, so that any change of an indicator moves its score
    (with the default knots random data sits on the flat ends and a property could not fail)."""
    from scoring.catalog import INDICATORS
    from scoring.rules import parse_rules

    data = {**SMALL_RULES_DICT, "indicators": dict(SMALL_RULES_DICT["indicators"])}
    for ind in INDICATORS:
        top = 400.0 if ind.hours else 1.0
        knots = [[0.0, 5.0], [top, 3.0]] if ind.better == "lower" else [[0.0, 3.0], [top, 5.0]]
        data["indicators"][ind.id] = {**data["indicators"][ind.id], "knots": knots}
    return parse_rules(data, "linear")


@PIPELINE
@given(marketplaces(), st.sampled_from(sorted(IMPROVEMENTS)), st.integers(0, 1_000))
def test_better_on_one_indicator_never_scores_lower(logs, improvement, pick) -> None:
    log, applies, change = IMPROVEMENTS[improvement]
    twin = _twin_of_shop_one(logs)
    key = LOGS[log].key
    candidates = sorted({r[key] for r in twin[log] if applies(r)})
    if candidates:
        chosen = candidates[pick % len(candidates)]  # every version of one record improves
        twin[log] = [{**r, **change} if r[key] == chosen else r for r in twin[log]]
    combined = {name: logs[name] + twin[name] for name in logs}
    with tempfile.TemporaryDirectory() as tmp:
        write_marketplace(Path(tmp) / "raw", combined)
        shops = run_tables(Path(tmp) / "raw", Path(tmp) / "out", linear_rules())["shop_scores"]
    rows = {r["shop_id"]: r for r in shops.filter(pl.col("shop_id").is_in([1, TWIN])).to_dicts()}
    if 1 not in rows:
        return
    original, better = rows[1], rows[TWIN]
    assert better["status"] == original["status"]
    for column in ("product_score", "logistics_score", "service_score"):
        if original[column] is not None:
            assert better[column] >= original[column] - 1e-12, column
    if original["score"] is not None:
        assert better["score"] >= original["score"] - 1e-12
