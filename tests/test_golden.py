"""The sample marketplace scores exactly as recorded in data_samples/expected/ (floats 1e-9)."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest

from pipelines.nightly.run import load_rules
from tests.compare import frame_differences
from tests.golden import EXPECTED, TABLES, golden_dates, read


@pytest.fixture(scope="module")
def produced(sample_output: Path) -> Path:
    return sample_output


@pytest.mark.parametrize("table", TABLES)
def test_matches_golden(produced: Path, table: str) -> None:
    for day in golden_dates():
        expected = read(EXPECTED, table, day)
        actual = read(produced, table, day)
        assert actual.height == expected.height, (table, day)
        if table == "quarantine":
            assert actual.equals(expected), (table, day)
            continue
        problems = frame_differences(table, actual, expected)
        assert not problems, "\n".join(problems)


def test_sample_covers_every_band_and_label() -> None:
    """The sample is only a good regression if every branch of the rules shows up in it."""
    last = golden_dates()[-1]
    bands = set(read(EXPECTED, "shop_scores", last)["band"])
    assert bands == {"4.8+", "4.5-4.8", "4.0-4.5", "<4.0", "unscored"}
    labels = set(read(EXPECTED, "shop_labels", last)["label"])
    assert labels == {
        "fast_shipping", "damage_free_return", "fast_cs_reply", "high_cs_satisfaction",
        "door_delivery", "return_insurance", "top_experience",
    }  # fmt: skip
    reasons = set(read(EXPECTED, "quarantine", last)["reason"])
    assert len(reasons) == 7
    tiers = set(read(EXPECTED, "shop_traffic_weights", last)["refund_only_tier"])
    assert tiers == {"autonomous", "negotiate_first", "standard"}
    assert read(EXPECTED, "item_scores", last).filter(pl.col("pxi").is_not_null()).height > 100
    # spec v1.1: the sample's window holds the shipped Spring Festival exemption and appeals
    excluded = read(EXPECTED, "shop_indicators", last).filter(pl.col("excluded") > 0)
    assert set(excluded["indicator"]) == {
        "delivery_hours", "track_anomaly_rate", "delivery_promise_rate",
    }  # fmt: skip
    assert read(EXPECTED, "shop_scores", last).filter(pl.col("appeals_upheld") > 0).height > 10


def day_pairs(table: str) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """(D-1, D) of `table` for each golden date but the first (which has no D-1)."""
    frames = [read(EXPECTED, table, day) for day in golden_dates()]
    return list(itertools.pairwise(frames))


def test_sample_clamps_weights_both_ways_by_a_share_of_d_minus_1() -> None:
    """The daily clamp binds upwards and downwards on the sample's dates, and binds at least
    once where D-1's weight is not 1, so a clamp of +/-0.1 (not 10%) would change the tables."""
    change = load_rules(None).max_daily_change
    up, down = [], []
    for before, now in day_pairs("shop_traffic_weights"):
        joined = now.join(before.select("shop_id", previous="weight"), on="shop_id")
        held_back = pl.col("weight") != pl.col("target_weight")
        for bound, factor in ((up, 1 + change), (down, 1 - change)):
            at_bound = (pl.col("weight") - pl.col("previous") * factor).abs() < 1e-12
            bound.append(joined.filter(at_bound & held_back))
    up_bound, down_bound = pl.concat(up), pl.concat(down)
    assert up_bound.height > 0 and down_bound.height > 0
    assert pl.concat([up_bound, down_bound]).filter(pl.col("previous") != 1.0).height > 0


def test_sample_holds_a_label_by_hysteresis_and_drops_one() -> None:
    """Some label is kept with a value that would not gain it (between exit and enter), and
    some label held on D-1 is gone on D."""
    rules = load_rules(None)
    kept_by_hysteresis = dropped = 0
    for before, now in day_pairs("shop_labels"):
        kept = now.join(before.select("shop_id", "label"), on=["shop_id", "label"], how="semi")
        for label, rule in rules.labels.items():
            values = kept.filter(pl.col("label") == label)["value"]
            short_of_enter = values < rule.enter if rule.exit <= rule.enter else values > rule.enter
            kept_by_hysteresis += int(short_of_enter.sum())
        dropped += before.join(now, on=["shop_id", "label"], how="anti").height
    assert kept_by_hysteresis > 0
    assert dropped > 0


def test_sample_matches_independent_reference(produced: Path) -> None:
    """The first golden date (nothing held on D-1) agrees with the row-by-row oracle."""
    from scoring.contract import TABLE_SCHEMAS
    from tests.builders import default_rules_dict
    from tests.compare import table_differences
    from tests.golden import SAMPLE_RAW
    from tests.oracle.reference import reference_tables

    day = golden_dates()[0]
    theirs = reference_tables(SAMPLE_RAW, day, default_rules_dict(), None)
    problems = [
        p
        for table, schema in TABLE_SCHEMAS.items()
        for p in table_differences(
            table, read(produced, table, day).to_dicts(), theirs[table], list(schema)
        )
    ]
    assert not problems, "\n".join(problems)
    assert len(theirs["quarantine"]) == read(produced, "quarantine", day).height
