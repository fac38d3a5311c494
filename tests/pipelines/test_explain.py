"""`expscore explain` on the sample: a real shop and item, text and JSON, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.analyst.explain import _indicator_display
from scoring.catalog import INDICATORS
from tests.builders import DEFAULT_RULES_PATH
from tests.golden import golden_dates
from tests.pipelines.analyst_support import cli

SHOP = 100001  # scored, main category 1005, loses most on quality refunds
ITEM = 100001000


@pytest.fixture(scope="module")
def out(sample_output: Path) -> Path:
    return sample_output


def published(out: Path, table: str) -> pl.DataFrame:
    day = golden_dates()[-1]
    return pl.read_parquet(out / table / f"dt={day}" / "part-0.parquet")


def test_json_matches_the_published_rows_sorted_by_points_lost(monkeypatch, capsys, out) -> None:
    code, stdout, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--shop", str(SHOP), "--json"
    )
    assert code == 0
    doc = json.loads(stdout)
    shop = published(out, "shop_scores").filter(pl.col("shop_id") == SHOP).row(0, named=True)
    assert doc["kind"] == "shop" and doc["date"] == str(golden_dates()[-1])
    assert doc["score"] == shop["score"] and doc["band"] == shop["band"]
    assert doc["peer_percentile"] == shop["peer_percentile"]
    assert [d["dimension"] for d in doc["dimensions"]] == ["product", "logistics", "service"]

    rows = published(out, "shop_indicators").filter(pl.col("shop_id") == SHOP)
    by_id = {r["indicator"]: r for r in rows.to_dicts()}
    indicators = doc["indicators"]
    assert sorted(i["indicator"] for i in indicators) == sorted(i.id for i in INDICATORS)
    lost = [i["points_lost"] for i in indicators]
    assert lost == sorted(lost, reverse=True)
    for ind in indicators:
        row = by_id[ind["indicator"]]
        for field in (
            "numerator",
            "denominator",
            "smoothed_value",
            "indicator_score",
            "points_lost",
        ):
            assert ind[field] == row[field]
        assert ind["next_tier"]["applies_to"] == "smoothed_value"
    # the dimension's points lost add up to what the score lost
    total = sum(d["points_lost"] for d in doc["dimensions"])
    assert total + doc["score"] - doc["bonus"] == pytest.approx(5.0)


def test_json_next_tier_by_hand(monkeypatch, capsys, out) -> None:
    """The top indicator of the sample shop, recomputed from the published row and the knots."""
    _, stdout, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--shop", str(SHOP), "--json"
    )
    top = json.loads(stdout)["indicators"][0]
    assert top["indicator"] == "quality_refund_rate"
    # 9 of 143 delivered orders; smoothed 0.0585 lies between the knots 0.03 (4.0) and 0.08 (3.0)
    assert (top["numerator"], top["denominator"]) == (9.0, 143)
    assert 0.03 < top["smoothed_value"] < 0.08
    tier = top["next_tier"]
    assert (tier["target_value"], tier["target_score"], tier["at_best"]) == (0.03, 4.0, False)
    # own rate r over the same 143 orders with (143 r + 20 prior) / 163 = 0.03
    expected = (0.03 * (143 + 20) - 20 * top["prior"]) / 143
    assert tier["raw_value_needed"] == pytest.approx(expected)
    assert tier["score_gain"] == pytest.approx(
        top["points_lost"] * (4.0 - top["indicator_score"]) / (5.0 - top["indicator_score"])
    )


def test_text(monkeypatch, capsys, out) -> None:
    code, stdout, _ = cli(monkeypatch, capsys, "explain", "--out", str(out), "--shop", str(SHOP))
    assert code == 0
    lines = stdout.splitlines()
    day = golden_dates()[-1]
    assert lines[0] == f"shop {SHOP} on {day} (rules 2026.2), main category 1005, 198 valid orders"
    assert lines[1].startswith("score 3.7462 (shown 3.7), band <4.0, above 3.8% of peers")
    assert "on the smoothed value" in stdout
    table = lines[lines.index(next(x for x in lines if x.startswith("indicators"))) + 1 :]
    header, first = table[0].split(), table[1].split()
    assert header[:3] == ["indicator", "dim", "better"]
    assert first[:4] == ["quality_refund_rate", "product", "lower", "0.0629"]
    assert "<= 0.03 -> 4.0" in table[1]
    for ind in INDICATORS:
        assert ind.id in stdout
    assert any(line.startswith("labels:") for line in lines)


def test_text_marks_best_and_not_assessed() -> None:
    rows = pl.DataFrame(
        {
            "indicator": ["delivery_hours", "refund_handling_hours"],
            "dimension": ["logistics", "service"],
            "better": ["lower", "lower"],
            "numerator": [200.0, 0.0],
            "denominator": [10, 0],
            "raw_value": [20.0, None],
            "smoothed_value": [21.0, None],
            "indicator_score": [5.0, None],
            "points_lost": [0.0, None],
            "assessed": [True, False],
            "target_value": [None, None],
            "target_score": [None, None],
            "score_gain": [None, None],
            "at_best": [True, None],
            "raw_target": [None, None],
        },
        schema_overrides={c: pl.Float64 for c in ("target_value", "target_score", "score_gain",
                                                  "raw_target", "smoothed_value",
                                                  "indicator_score", "points_lost", "raw_value")},
    )  # fmt: skip
    shown = _indicator_display(rows)
    assert shown["next tier (smoothed)"].to_list() == ["at best knot", "not assessed"]
    assert shown["value = num/den"].to_list() == ["20.0 = 200.0 h/10", "- (no data)"]


def test_item(monkeypatch, capsys, out) -> None:
    code, stdout, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--item", str(ITEM), "--json"
    )
    assert code == 0
    doc = json.loads(stdout)
    row = published(out, "item_scores").filter(pl.col("item_id") == ITEM).row(0, named=True)
    assert doc["kind"] == "item" and doc["pxi"] == row["pxi"] and doc["shop_id"] == SHOP
    tier = doc["next_tier"]
    assert tier["applies_to"] == "smoothed_rate"
    # smoothed 0.281 (27 problem orders of 91, late shipments among them since v1.1) is between
    # the PXI knots 0.15 (30) and 0.30 (0)
    assert (tier["target_rate"], tier["target_pxi"]) == (0.15, 30.0)
    _, text, _ = cli(monkeypatch, capsys, "explain", "--out", str(out), "--item", str(ITEM))
    assert text.startswith(f"item {ITEM} of shop {SHOP}")
    assert "<= 0.15 -> PXI 30" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shop", "999"], "shop 999 has no score on"),
        (["--item", "999"], "item 999 has no PXI row on"),
        (["--shop", str(SHOP), "--date", "2026-01-01"], "no shop_scores output for 2026-01-01"),
        (["--shop", str(SHOP), "--date", "soon"], "--date: 'soon' is not a date"),
        ([], "exactly one of --shop ID or --item ID"),
        (["--shop", "1", "--item", "2"], "exactly one of --shop ID or --item ID"),
    ],
)
def test_bad_input_exits_2(monkeypatch, capsys, out, args, message) -> None:
    code, _, err = cli(monkeypatch, capsys, "explain", "--out", str(out), *args)
    assert code == 2
    assert err.count("\n") == 1 and message in err


def test_rules_of_another_version_are_refused(monkeypatch, capsys, out, tmp_path) -> None:
    other = tmp_path / "rules.toml"
    other.write_text(DEFAULT_RULES_PATH.read_text().replace('version = "2026.2"', 'version = "x"'))
    code, _, err = cli(
        monkeypatch,
        capsys,
        "explain",
        "--out",
        str(out),
        "--shop",
        str(SHOP),
        "--rules",
        str(other),
    )
    assert code == 2 and "scored with rules version '2026.2'" in err


def test_no_output_exits_2(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = cli(monkeypatch, capsys, "explain", "--out", str(tmp_path), "--shop", "1")
    assert code == 2 and "no published shop_scores" in err


def test_exemptions_and_upheld_appeals_are_explained(monkeypatch, capsys, out) -> None:
    """Per indicator the rows an exemption removed and which exemption (the sample's window
    holds the shipped Spring Festival exemption); per shop its upheld appeals."""
    code, stdout, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--shop", str(SHOP), "--json"
    )
    assert code == 0
    doc = json.loads(stdout)
    rows = published(out, "shop_indicators").filter(pl.col("shop_id") == SHOP)
    excluded = dict(rows.select("indicator", "excluded").rows())
    for ind in doc["indicators"]:
        assert ind["excluded"] == excluded[ind["indicator"]]
        named = ind["indicator"] in (
            "delivery_hours",
            "track_anomaly_rate",
            "delivery_promise_rate",
        )
        assert ind["exempted_by"] == ("spring_festival_2026" if named else None)
    assert excluded["delivery_hours"] > 0
    appealed = published(out, "shop_scores").filter(pl.col("appeals_upheld") > 0)
    shop = appealed.row(0, named=True)
    code, text, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--shop", str(shop["shop_id"])
    )
    assert code == 0
    assert (
        f"upheld appeals [申诉成立]: {shop['appeals_upheld']} orders, refunds or sessions" in text
    )
    assert "rows removed by exemptions [豁免]: " in text
