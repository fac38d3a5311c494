"""The sample marketplace scores exactly as recorded in data_samples/expected/ (floats 1e-9)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.compare import frame_differences
from tests.golden import EXPECTED, TABLES, golden_dates, produce, read


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    produce(out)
    return out


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


def test_sample_matches_independent_reference(produced: Path) -> None:
    """The first golden date (nothing held on D-1) agrees with the row-by-row oracle."""
    from scoring.daily import TABLE_SCHEMAS
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
