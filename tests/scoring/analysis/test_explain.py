"""Next-tier targets [下一档目标值], computed by hand from the default knots (SCORING.md 11).

quality_refund_rate (lower is better):
    [0.0, 5.0] [0.005, 4.8] [0.015, 4.5] [0.03, 4.0] [0.08, 3.0]
pickup_on_time_rate (higher is better), default and category 1001:
    [0.80, 3.0] [0.90, 4.0] [0.95, 4.5] [0.98, 4.8] [1.0, 5.0]
    [0.85, 3.0] [0.93, 4.0] [0.97, 4.5] [0.99, 4.8] [1.0, 5.0]
delivery_hours (lower): [24, 5.0] [48, 4.8] [72, 4.5] [96, 4.0] [168, 3.0]
pxi_knots (lower): [0, 100] [0.01, 95] [0.03, 85] [0.06, 60] [0.15, 30] [0.30, 0]
"""

from __future__ import annotations

import polars as pl
import pytest

from scoring.analysis.explain import (
    item_next_tier,
    next_knot,
    points_lost_by_dimension,
    with_next_tier,
)
from tests.scoring.support import rules_with

RULES = rules_with()
QUALITY = RULES.default.indicators["quality_refund_rate"].knots
PICKUP = RULES.default.indicators["pickup_on_time_rate"].knots
HOURS = RULES.default.indicators["delivery_hours"].knots


def targets(values: list[float | None], knots, better) -> list[tuple[float | None, float | None]]:
    value, score = next_knot(pl.col("v"), knots, better)
    frame = pl.DataFrame({"v": values}, schema={"v": pl.Float64}).select(t=value, s=score)
    return list(zip(frame["t"].to_list(), frame["s"].to_list(), strict=True))


def test_lower_is_better_targets_the_next_knot_below() -> None:
    assert targets([0.02, 0.015, 0.003, 0.0, None], QUALITY, "lower") == [
        (0.015, 4.5),  # between 0.015 and 0.03: the knot below
        (0.005, 4.8),  # exactly at a knot: the next one, not itself
        (0.0, 5.0),
        (None, None),  # at the best knot
        (None, None),  # not assessed
    ]


def test_beyond_the_worst_knot_the_target_is_the_first_knot_that_scores_more() -> None:
    # flat at 3.0 from 0.08 on: reaching 0.08 gains nothing, 0.03 is worth 4.0
    assert targets([0.1, 0.08], QUALITY, "lower") == [(0.03, 4.0), (0.03, 4.0)]
    assert targets([200.0, 100.0, 30.0, 24.0, 20.0], HOURS, "lower") == [
        (96.0, 4.0),
        (96.0, 4.0),
        (24.0, 5.0),
        (None, None),  # at the best knot
        (None, None),  # beyond it
    ]


def test_higher_is_better_targets_the_next_knot_above() -> None:
    assert targets([0.75, 0.80, 0.96, 0.99, 1.0], PICKUP, "higher") == [
        (0.90, 4.0),  # below the worst knot: 0.80 still scores 3.0
        (0.90, 4.0),
        (0.98, 4.8),
        (1.0, 5.0),
        (None, None),
    ]


def test_flat_knots_are_skipped() -> None:
    flat = ((0.8, 3.0), (0.9, 3.0), (0.95, 4.0), (1.0, 5.0))
    assert targets([0.85, 0.9], flat, "higher") == [(0.95, 4.0), (0.95, 4.0)]


def indicator_rows(**columns: list) -> pl.LazyFrame:
    n = len(next(iter(columns.values())))
    base = {"shop_id": list(range(1, n + 1)), "dimension": ["x"] * n, "assessed": [True] * n}
    schema = {
        "shop_id": pl.Int64,
        "main_category_id": pl.Int64,
        "indicator": pl.String,
        "dimension": pl.String,
        "numerator": pl.Float64,
        "denominator": pl.Int64,
        "raw_value": pl.Float64,
        "prior": pl.Float64,
        "smoothed_value": pl.Float64,
        "indicator_score": pl.Float64,
        "points_lost": pl.Float64,
        "assessed": pl.Boolean,
    }
    return pl.LazyFrame({**base, **columns}, schema=schema)


def test_category_1001_override_moves_the_target() -> None:
    rows = indicator_rows(
        main_category_id=[1001, 1002, None],
        indicator=["pickup_on_time_rate"] * 3,
        numerator=[95.0] * 3,
        denominator=[100] * 3,
        raw_value=[0.95] * 3,
        prior=[0.95] * 3,
        smoothed_value=[0.95] * 3,
        indicator_score=[4.25, 4.5, 4.5],
        points_lost=[0.1, 0.1, 0.1],
    )
    out = with_next_tier(rows, RULES).sort("shop_id").collect()
    assert out["target_value"].to_list() == [0.97, 0.98, 0.98]
    assert out["target_score"].to_list() == [4.5, 4.8, 4.8]
    # category 1001 scores 0.95 as 4.0 + 0.5 x (0.95 - 0.93) / 0.04 = 4.25
    assert out["score_gain"][0] == pytest.approx(0.1 * (4.5 - 4.25) / (5 - 4.25))


def test_raw_target_translates_the_smoothed_target_back_to_the_shops_own_rate() -> None:
    # k = 20 for both indicators.
    # 1: 10 of 100 quality refunds, prior 0.02: smoothed (10 + 0.4) / 120, score 3.0 (past 0.08);
    #    target 0.03 -> 4.0; own rate r with (100 r + 0.4) / 120 = 0.03 -> r = 0.032.
    # 2: 0 of 5, prior 0.05: smoothed 1 / 25 = 0.04, target 0.03 needs r = -0.05: impossible.
    # 3: no delivered order: smoothed = prior; nothing of the shop's own can move it.
    # 4: 90 of 100 picked up on time, prior 0.9: smoothed 0.9 (a knot, 4.0) -> 0.95;
    #    (100 r + 18) / 120 = 0.95 -> r = 0.96.
    # 5: 5 of 5, prior 0.8: smoothed 21 / 25 = 0.84 -> 0.90 needs r = 1.3: impossible.
    rows = indicator_rows(
        main_category_id=[1002] * 5,
        indicator=["quality_refund_rate"] * 3 + ["pickup_on_time_rate"] * 2,
        numerator=[10.0, 0.0, 0.0, 90.0, 5.0],
        denominator=[100, 5, 0, 100, 5],
        raw_value=[0.1, 0.0, None, 0.9, 1.0],
        prior=[0.02, 0.05, 0.02, 0.9, 0.8],
        smoothed_value=[10.4 / 120, 0.04, 0.02, 0.9, 0.84],
        indicator_score=[3.0, 3.8, 4.0 + 0.5 * 0.01 / 0.015, 4.0, 3.4],
        points_lost=[0.35, 0.07, 0.04, 0.09, 0.144],
    )
    out = with_next_tier(rows, RULES).sort("shop_id").collect()
    assert out["target_value"].to_list() == [0.03, 0.03, 0.015, 0.95, 0.90]
    assert out["raw_target"][0] == pytest.approx(0.032)
    assert out["raw_target"].to_list()[1:3] == [None, None]
    assert out["raw_target"][3] == pytest.approx(0.96)
    assert out["raw_target"][4] is None
    assert out["better"].to_list() == ["lower"] * 3 + ["higher"] * 2
    assert out["at_best"].to_list() == [False] * 5
    # points_lost x (target score - score) / (5 - score): 0.35 x 1 / 2
    assert out["score_gain"][0] == pytest.approx(0.175)


def test_at_best_and_not_assessed() -> None:
    rows = indicator_rows(
        main_category_id=[1002, 1002],
        indicator=["delivery_hours", "delivery_hours"],
        numerator=[200.0, 0.0],
        denominator=[10, 0],
        raw_value=[20.0, None],
        prior=[22.0, None],
        smoothed_value=[21.33, None],
        indicator_score=[5.0, None],
        points_lost=[0.0, None],
        assessed=[True, False],
    )
    out = with_next_tier(rows, RULES).sort("shop_id").collect()
    assert out["at_best"].to_list() == [True, None]
    assert out["target_value"].to_list() == [None, None]
    assert out["score_gain"].to_list() == [None, None]
    assert out["raw_target"].to_list() == [None, None]


def test_item_next_tier_on_the_pxi_knots() -> None:
    # k_item = 10. 2 problems of 20, smoothed 0.08: PXI 60 - 30 x 0.02 / 0.09 = 53.33;
    # next knot 0.06 (PXI 60); own rate r: 0.1 + (0.06 - 0.08) x 30 / 20 = 0.07.
    items = pl.LazyFrame(
        {
            "item_id": [1, 2],
            "paid_orders": [20, 8],
            "problem_orders": [2, 0],
            "smoothed_rate": [0.08, 0.0],
            "pxi": [60 - 30 * 0.02 / 0.09, 100.0],
        }
    )
    out = item_next_tier(items, RULES).sort("item_id").collect()
    assert out["target_rate"].to_list() == [0.06, None]
    assert out["target_pxi"].to_list() == [60.0, None]
    assert out["at_best"].to_list() == [False, True]
    assert out["raw_target"][0] == pytest.approx(0.07)
    assert out["pxi_gain"][0] == pytest.approx(30 * 0.02 / 0.09)


def test_points_lost_by_dimension() -> None:
    rows = pl.LazyFrame(
        {
            "shop_id": [1, 1, 1, 2],
            "dimension": ["product", "product", "service", "service"],
            "points_lost": [0.1, 0.2, None, None],
            "assessed": [True, True, False, False],
        }
    )
    out = points_lost_by_dimension(rows).collect()
    assert out.rows() == [
        (1, "product", pytest.approx(0.3)),
        (1, "service", None),
        (2, "service", None),
    ]
