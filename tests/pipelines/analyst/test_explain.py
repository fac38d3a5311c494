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


def test_text_of_an_unscored_shop_without_exempted_rows(monkeypatch, capsys, out) -> None:
    """Shop 100023 has one valid order in the window (fewer than min_orders) and no row an
    exemption removed: no score line, an unscored line instead, and no exemption line."""
    code, stdout, _ = cli(monkeypatch, capsys, "explain", "--out", str(out), "--shop", "100023")
    assert code == 0
    lines = stdout.splitlines()
    day = golden_dates()[-1]
    assert lines[:3] == [
        f"shop 100023 on {day} (rules 2026.2), main category 1002, 1 valid orders",
        "unscored: insufficient_orders (fewer valid orders than the minimum); the dimension "
        "scores and indicators below are computed all the same",
        "traffic weight 1.000 (target 1.000), refund-only tier standard, campaign not eligible",
    ]
    assert not any(line.startswith(("score ", "rows removed by exemptions")) for line in lines)
    assert lines[-1] == "labels: none"


def test_text_of_an_unscored_item(monkeypatch, capsys, out) -> None:
    """Item 100002003: 4 paid orders (fewer than min_item_orders), none a problem, so no PXI and
    no PXI gain; the next knot is out of reach of its own rate at this volume."""
    code, stdout, _ = cli(monkeypatch, capsys, "explain", "--out", str(out), "--item", "100002003")
    assert code == 0
    assert stdout.splitlines()[2:] == [
        "unscored: insufficient_orders (too few paid orders for a PXI)",
        "traffic weight 1.000, campaign not eligible",
        "next tier (on the smoothed problem rate): <= 0.03 -> PXI 85; own problem rate needed "
        "over 4 paid orders: out of reach at this volume",
    ]
    _, stdout, _ = cli(
        monkeypatch, capsys, "explain", "--out", str(out), "--item", "100002003", "--json"
    )
    doc = json.loads(stdout)
    assert doc["pxi"] is None and doc["status"] == "insufficient_orders"
    assert doc["next_tier"]["pxi_gain"] is None and doc["next_tier"]["raw_rate_needed"] is None


def test_an_item_at_the_best_knot_has_no_next_tier(monkeypatch, capsys, out, tmp_path) -> None:
    """Rules whose best PXI (100) holds up to a smoothed problem rate of 0.05: item 100002003
    (smoothed 0.0412) is at the best knot already."""
    rules = tmp_path / "rules.toml"
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    knots = "pxi_knots = [[0.0, 100.0], [0.01, 95.0], [0.03, 85.0], [0.06, 60.0], "
    assert knots in shipped
    rules.write_text(shipped.replace(knots, "pxi_knots = [[0.0, 100.0], [0.05, 100.0], "), "utf-8")
    args = ["explain", "--out", str(out), "--item", "100002003", "--rules", str(rules)]
    code, stdout, _ = cli(monkeypatch, capsys, *args)
    assert code == 0
    assert stdout.splitlines()[-1] == "next tier: already at the best PXI knot"
    _, stdout, _ = cli(monkeypatch, capsys, *args, "--json")
    tier = json.loads(stdout)["next_tier"]
    assert tier["at_best"] is True
    assert tier["target_rate"] is None and tier["target_pxi"] is None


def test_a_date_without_traffic_weights_is_explained_without_them(
    monkeypatch, capsys, out, tmp_path
) -> None:
    """An output whose traffic weight tables were not kept (only the scores, indicators and
    labels of the date): the explanation leaves the traffic line out, and its JSON says null."""
    import shutil

    day = golden_dates()[-1]
    pruned = tmp_path / "out"
    for table in ("shop_scores", "shop_indicators", "shop_labels", "item_scores"):
        shutil.copytree(out / table / f"dt={day}", pruned / table / f"dt={day}")
    shutil.copytree(out / "manifests", pruned / "manifests")
    for kind, key in (("--shop", SHOP), ("--item", ITEM)):
        code, text, _ = cli(monkeypatch, capsys, "explain", "--out", str(pruned), kind, str(key))
        assert code == 0
        assert text.count("\n") >= 3 and "traffic weight" not in text
        with_traffic = cli(monkeypatch, capsys, "explain", "--out", str(out), kind, str(key))[1]
        assert [line for line in with_traffic.splitlines() if "traffic weight" not in line] == (
            text.splitlines()
        )
        _, stdout, _ = cli(
            monkeypatch, capsys, "explain", "--out", str(pruned), kind, str(key), "--json"
        )
        assert json.loads(stdout)["traffic"] is None
