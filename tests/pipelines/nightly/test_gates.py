"""Quality gates: unit rules, then exit code 3, --force and the held manifest end to end."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from pipelines.nightly.gates import (
    band_change_gate,
    min_rows_gates,
    quarantine_gates,
    row_count_gates,
    window_rows_gates,
)
from scoring.rules import GateRules
from tests.builders import DEFAULT_RULES_PATH, write_partition
from tests.pipelines.cli_runner import cli
from tests.pipelines.ingest.test_bad_input import D, steady_raw

GATES = GateRules()


def files(log: str, rows_by_day: dict[dt.date, int]) -> list[dict]:
    return [
        {"log": log, "dt": d.isoformat(), "rows": n, "path": "x"} for d, n in rows_by_day.items()
    ]


def test_row_count_gate_against_trailing_median() -> None:
    history = {D - dt.timedelta(days=n): r for n, r in enumerate([0, 10, 20, 30, 40, 50, 60, 70])}
    # today's 0 vs median of [10..70] = 40: 0 < 20 -> held; today at exactly 20 passes
    [orders] = [g for g in row_count_gates(files("orders", history), D, GATES) if g.log == "orders"]
    assert not orders.passed and orders.threshold == 20.0
    history[D] = 20
    [orders] = [g for g in row_count_gates(files("orders", history), D, GATES) if g.log == "orders"]
    assert orders.passed


def test_row_count_gate_passes_without_history() -> None:
    results = row_count_gates(files("orders", {D: 1}), D, GATES)
    assert all(g.passed for g in results)


def test_quarantine_gate_counts_todays_rows_only() -> None:
    quarantine = pl.DataFrame(
        {"log": ["refunds"] * 3, "source_dt": [D, D, D - dt.timedelta(days=1)]}
    )
    entries = files("refunds", {D: 100, D - dt.timedelta(days=1): 100})
    [refunds] = [g for g in quarantine_gates(entries, quarantine, D, GATES) if g.log == "refunds"]
    assert refunds.value == pytest.approx(0.02) and not refunds.passed
    [refunds] = [
        g
        for g in quarantine_gates(entries, quarantine, D, GateRules(max_quarantine_share=0.02))
        if g.log == "refunds"
    ]
    assert refunds.passed  # 2% is not above a 2% limit


def test_band_change_gate() -> None:
    today = pl.DataFrame(
        {"shop_id": [1, 2, 3, 4, 5], "band": ["4.8+", "<4.0", "4.0-4.5", "unscored", "4.0-4.5"],
         "status": ["scored", "scored", "scored", "insufficient_orders", "scored"]}
    )  # fmt: skip
    previous = pl.DataFrame(
        {"shop_id": [1, 2, 3, 4], "band": ["4.8+", "4.0-4.5", "4.0-4.5", "unscored"],
         "status": ["scored", "scored", "scored", "insufficient_orders"]}
    )  # fmt: skip
    # compared: shops 1-3 (4 unscored both days, 5 new); changed: shop 2 -> 1/3
    [gate] = band_change_gate(today, previous, GATES)
    assert gate.value == pytest.approx(1 / 3) and not gate.passed
    assert band_change_gate(today, None, GATES) == []


def test_shops_that_vanish_count_as_changed() -> None:
    previous = pl.DataFrame(
        {"shop_id": [1, 2, 3, 4], "band": ["4.8+", "4.0-4.5", "<4.0", "unscored"],
         "status": ["scored", "scored", "scored", "insufficient_orders"]}
    )  # fmt: skip
    today = previous.filter(pl.col("shop_id") == 1)  # a feed that lost three shops
    # compared: 1, 2, 3 (4 was never scored); changed: 2 and 3, gone -> 2/3
    [gate] = band_change_gate(today, previous, GATES)
    assert gate.value == pytest.approx(2 / 3) and not gate.passed


def test_trailing_days_count_what_their_own_runs_recorded() -> None:
    # the raw folder lost its history (all zeros); the manifests of the days before say 20
    raw_history = files("orders", {D: 0})
    recorded = {D - dt.timedelta(days=n): {"orders": 20} for n in range(1, 8)}
    [orders] = [g for g in row_count_gates(raw_history, D, GATES, recorded) if g.log == "orders"]
    assert not orders.passed and orders.threshold == 10.0
    # a day never run falls back to the raw folder's count
    partial = {D - dt.timedelta(days=n): {"orders": 20} for n in range(1, 3)}
    history = files("orders", {D: 0, **{D - dt.timedelta(days=n): 0 for n in range(3, 8)}})
    [orders] = [g for g in row_count_gates(history, D, GATES, partial) if g.log == "orders"]
    assert orders.passed  # median of [20, 20, 0, 0, 0, 0, 0] = 0


def test_a_window_that_shrank_since_the_night_before_is_held() -> None:
    window = files("refunds", {D - dt.timedelta(days=n): 10 for n in range(3)})
    [refunds] = [
        g for g in window_rows_gates(window, {"refunds": 100}, GATES) if g.log == "refunds"
    ]
    assert not refunds.passed and refunds.value == 30 and refunds.threshold == 50
    [refunds] = [g for g in window_rows_gates(window, {"refunds": 60}, GATES) if g.log == "refunds"]
    assert refunds.passed
    assert window_rows_gates(window, None, GATES) == []


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    steady_raw(raw)
    return raw


def test_held_run_exits_3_keeps_previous_tables_and_force_publishes(
    monkeypatch, capsys, raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["run", "--raw", str(raw), "--out", str(out), "--date", str(D)]
    assert cli(monkeypatch, capsys, *args)[0] == 0
    published = pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet")

    # today's orders feed arrives with 5 rows instead of ~20: held
    write_partition(raw, "orders", D, [{"order_id": 900 + i} for i in range(5)])
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 3
    assert "publication held by quality gate(s): orders: 5 rows" in err
    assert pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet").equals(published)
    held = json.loads((out / "manifests" / f"dt={D}.held.json").read_text())
    assert held["status"] == "held"
    assert [g["gate"] for g in held["gates"] if not g["passed"]] == ["row_count"]
    assert json.loads((out / "manifests" / f"dt={D}.json").read_text())["status"] == "published"

    code, stdout, _ = cli(monkeypatch, capsys, *args, "--force")
    assert code == 0
    assert "FORCED past failed gates: orders: 5 rows" in stdout
    manifest = json.loads((out / "manifests" / f"dt={D}.json").read_text())
    assert manifest["status"] == "forced"
    assert not (out / "manifests" / f"dt={D}.held.json").exists()
    assert not pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet").equals(published)


def test_gates_are_configurable_in_the_rules_file(monkeypatch, capsys, raw, tmp_path) -> None:
    write_partition(raw, "orders", D, [{"order_id": 900 + i} for i in range(5)])
    lenient = tmp_path / "rules.toml"
    lenient.write_text(
        DEFAULT_RULES_PATH.read_text().replace(
            "min_rows_vs_median = 0.5", "min_rows_vs_median = 0.2"
        )
    )
    args = ["run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--date", str(D)]
    assert cli(monkeypatch, capsys, *args, "--rules", str(lenient))[0] == 0


def test_bad_gate_value_in_rules_is_refused(monkeypatch, capsys, raw, tmp_path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(
        DEFAULT_RULES_PATH.read_text().replace(
            "max_quarantine_share = 0.01", "max_quarantine_share = 5"
        )
    )
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--rules", str(bad))
    assert code == 2 and "gates.max_quarantine_share: must be <= 1.0, got 5" in err


def test_per_log_minimum_rows_from_the_rules() -> None:
    gates = GateRules(min_rows={"orders": 20, "refunds": 0})
    results = {g.log: g for g in min_rows_gates(files("orders", {D: 19}), D, gates)}
    assert not results["orders"].passed and results["orders"].threshold == 20
    assert results["refunds"].passed  # 0 rows, minimum 0
    assert min_rows_gates(files("orders", {D: 19}), D, GATES) == []  # none by default


def test_min_rows_holds_a_first_run_with_too_little_data(monkeypatch, capsys, raw, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT_RULES_PATH.read_text() + "\n[gates.min_rows]\norders = 1000\n")
    args = ["run", "--raw", str(raw), "--out", str(tmp_path / "out"), "--date", str(D)]
    code, _, err = cli(monkeypatch, capsys, *args, "--rules", str(rules))
    assert code == 3 and "orders: 20 rows on" in err and "below the minimum of 1000" in err


def test_min_rows_names_only_logs(monkeypatch, capsys, raw, tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT_RULES_PATH.read_text() + "\n[gates.min_rows]\nordres = 1\n")
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--rules", str(rules))
    assert code == 2 and "gates.min_rows.ordres: unknown key 'ordres' (known: 'orders'," in err
