"""The bad-input catalogue, end to end through the CLI: a clear message and nothing lost.

Row-level problems (reason codes) are in test_load.py; these are the file- and partition-level
cases, and what each does to the exit code and to the published output.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.builders import frame, ts, write_partition
from tests.pipelines.cli_runner import cli

D = dt.date(2026, 3, 10)


def steady_raw(raw: Path, days: int = 10) -> None:
    """A steady feed: 20 orders and a session paid/started on each of the days up to D."""
    for n in range(days):
        day = D - dt.timedelta(days=n)
        paid = dt.datetime.combine(day, dt.time(2), tzinfo=dt.UTC)
        orders = [{"order_id": n * 100 + i, "paid_at": paid} for i in range(20)]
        write_partition(raw, "orders", day, orders)
        write_partition(raw, "cs_sessions", day, [{"session_id": n, "started_at": paid}])


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    steady_raw(raw)
    return raw


def run(monkeypatch, capsys, raw: Path, out: Path, *extra: str):
    return cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out), "--date", str(D), *extra
    )


def test_truncated_parquet_exits_2_and_publishes_nothing(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    path = raw / "orders" / f"dt={D}" / "part-0.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    code, _, err = run(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 2
    assert f"dt={D}/part-0.parquet: cannot be read as Parquet" in err
    assert not (tmp_path / "out" / "shop_scores").exists()


def test_corrupt_data_behind_a_valid_footer_names_the_file(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    path = write_partition(raw, "orders", D, [{"order_id": 10_000 + i} for i in range(3000)], "big")
    data = bytearray(path.read_bytes())
    data[8 : len(data) // 2] = b"\xff" * (len(data) // 2 - 8)
    path.write_bytes(bytes(data))
    code, _, err = run(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 2
    assert "big.parquet: cannot be read as Parquet" in err


def test_a_failed_run_leaves_the_previous_tables(monkeypatch, capsys, raw, tmp_path) -> None:
    out = tmp_path / "out"
    assert run(monkeypatch, capsys, raw, out)[0] == 0
    before = pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet")
    pl.read_parquet(raw / "orders" / f"dt={D}" / "part-0.parquet").drop(
        "amount_cents"
    ).write_parquet(raw / "orders" / f"dt={D}" / "part-0.parquet")
    code, _, err = run(monkeypatch, capsys, raw, out)
    assert code == 2 and "missing required column 'amount_cents'" in err
    assert pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet").equals(before)


def test_empty_partition_and_empty_file_are_accepted(monkeypatch, capsys, raw, tmp_path) -> None:
    (raw / "refunds" / f"dt={D}").mkdir(parents=True)
    folder = raw / "refunds" / f"dt={D - dt.timedelta(days=2)}"
    folder.mkdir(parents=True)
    frame("refunds", []).write_parquet(folder / "part-0.parquet")
    code, _, _ = run(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 0


def test_same_file_copied_twice_counts_once(monkeypatch, capsys, raw, tmp_path) -> None:
    out_once, out_twice = tmp_path / "once", tmp_path / "twice"
    assert run(monkeypatch, capsys, raw, out_once)[0] == 0
    folder = raw / "orders" / f"dt={D}"
    shutil.copyfile(folder / "part-0.parquet", folder / "part-0 (copy).parquet")
    assert run(monkeypatch, capsys, raw, out_twice)[0] == 0
    for table in ("shop_scores", "shop_indicators", "item_scores"):
        once = pl.read_parquet(out_once / table / f"dt={D}" / "part-0.parquet")
        twice = pl.read_parquet(out_twice / table / f"dt={D}" / "part-0.parquet")
        assert once.equals(twice), table
    manifest = json.loads((out_twice / "manifests" / f"dt={D}.json").read_text())
    assert manifest["inputs"]["orders"]["rows_read"] == 220  # read twice, counted once
    assert manifest["inputs"]["orders"]["rows_current"] == 200


def test_missing_day_is_held_by_the_row_count_gate(monkeypatch, capsys, raw, tmp_path) -> None:
    shutil.rmtree(raw / "orders" / f"dt={D}")
    code, _, err = run(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 3
    assert f"orders: 0 rows on {D}, below 0.5 x the 7-day median of 20" in err
    held = json.loads((tmp_path / "out" / "manifests" / f"dt={D}.held.json").read_text())
    assert held["status"] == "held"
    assert str(D) in held["inputs"]["orders"]["missing_partitions"]
    assert not (tmp_path / "out" / "shop_scores").exists()  # nothing published


def test_naive_and_narrow_inputs_are_accepted(monkeypatch, capsys, raw, tmp_path) -> None:
    path = raw / "cs_sessions" / f"dt={D}" / "part-0.parquet"
    pl.read_parquet(path).with_columns(
        pl.col("started_at", "closed_at").dt.replace_time_zone(None),
        pl.col("session_id", "shop_id").cast(pl.Int16),
        pl.col("first_response_seconds").cast(pl.UInt8),
    ).write_parquet(path)
    assert run(monkeypatch, capsys, raw, tmp_path / "out")[0] == 0


def test_stray_non_parquet_files_are_ignored(monkeypatch, capsys, raw, tmp_path) -> None:
    (raw / "orders" / f"dt={D}" / "_SUCCESS").write_text("")
    assert run(monkeypatch, capsys, raw, tmp_path / "out")[0] == 0


def test_session_at_partition_cutoff_is_quarantined_not_fatal(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    # cutoff(D) = D+1 00:00 local = D 16:00 UTC
    late = {"session_id": 999, "started_at": ts(2026, 3, 10, 15), "closed_at": ts(2026, 3, 10, 16)}
    write_partition(raw, "cs_sessions", D, [late], "late")
    out = tmp_path / "out"
    assert run(monkeypatch, capsys, raw, out, "--force")[0] == 0
    q = pl.read_parquet(out / "quarantine" / f"dt={D}" / "part-0.parquet")
    assert q.filter(pl.col("record_key") == 999)["reason"].to_list() == [
        "at_or_after_partition_cutoff"
    ]


# --------------------------------------------------------------------------------------------
# the D-1 history labels and weights build on (issue 23, item 3)


def published_day_before(monkeypatch, capsys, raw: Path, out: Path) -> Path:
    code, _, _ = cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out),
        "--date", str(D - dt.timedelta(days=1)), "--force",
    )  # fmt: skip
    assert code == 0
    return out


def test_a_copied_file_in_yesterdays_weights_stops_the_run(monkeypatch, capsys, raw, tmp_path):
    out = published_day_before(monkeypatch, capsys, raw, tmp_path / "out")
    folder = out / "shop_traffic_weights" / f"dt={D - dt.timedelta(days=1)}"
    shutil.copy(folder / "part-0.parquet", folder / "part-0 (copy).parquet")
    code, _, err = run(monkeypatch, capsys, raw, out, "--force")
    assert code == 2
    assert str(folder) in err and "not unique" in err and "part-0 (copy).parquet" in err
    assert not (out / "shop_scores" / f"dt={D}").exists()


def test_a_deleted_partition_of_a_published_day_stops_the_run(monkeypatch, capsys, raw, tmp_path):
    out = published_day_before(monkeypatch, capsys, raw, tmp_path / "out")
    folder = out / "shop_labels" / f"dt={D - dt.timedelta(days=1)}"
    shutil.rmtree(folder)
    code, _, err = run(monkeypatch, capsys, raw, out, "--force")
    assert code == 2
    assert f"{folder}: missing, though {D - dt.timedelta(days=1)} was published" in err
    assert not (out / "shop_scores" / f"dt={D}").exists()


def test_a_damaged_history_file_names_the_partition(monkeypatch, capsys, raw, tmp_path):
    out = published_day_before(monkeypatch, capsys, raw, tmp_path / "out")
    folder = out / "shop_labels" / f"dt={D - dt.timedelta(days=1)}"
    (folder / "part-0.parquet").write_bytes(b"PAR1 torn PAR1")
    code, _, err = run(monkeypatch, capsys, raw, out, "--force")
    assert code == 2 and f"{folder}: D-1 history cannot be read" in err


def test_the_manifest_says_which_day_before_it_built_on(monkeypatch, capsys, raw, tmp_path):
    out = tmp_path / "out"
    code, _, _ = run(monkeypatch, capsys, raw, out, "--force")  # nothing published for D-1
    assert code == 0
    first = json.loads((out / "manifests" / f"dt={D}.json").read_text())
    assert first["previous"] == {"shop_labels": None, "shop_traffic_weights": None}
    code, _, _ = cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out),
        "--date", str(D + dt.timedelta(days=1)), "--force",
    )  # fmt: skip
    second = json.loads((out / "manifests" / f"dt={D + dt.timedelta(days=1)}.json").read_text())
    weights = second["previous"]["shop_traffic_weights"]
    assert weights["dt"] == str(D) and weights["path"] == f"shop_traffic_weights/dt={D}"
    assert weights["rows"] == first["outputs"]["shop_traffic_weights"]["rows"]


# --------------------------------------------------------------------------------------------
# missing input never publishes (issue 23, item 1)


def test_an_empty_raw_folder_publishes_nothing_and_keeps_the_state(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    out = published_day_before(monkeypatch, capsys, raw, tmp_path / "out")
    state_before = sorted(p.name for p in (out / ".state" / "manifests").iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(monkeypatch, capsys, empty, out)
    assert code == 2 and "no partition of any log in the window" in err
    assert not (out / "shop_scores" / f"dt={D}").exists()
    assert sorted(p.name for p in (out / ".state" / "manifests").iterdir()) == state_before


def test_a_lost_log_folder_is_held_against_the_recorded_history(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    out = published_day_before(monkeypatch, capsys, raw, tmp_path / "out")
    shutil.rmtree(raw / "cs_sessions")
    code, _, err = run(monkeypatch, capsys, raw, out)
    assert code == 3
    # only D-1 was ever run, so the trailing median of D's own partition has little to go on;
    # the window the run of D-1 read says what is missing
    assert "cs_sessions: 0 rows in the window, below 0.5 x the 9 of the day before's window" in err
    assert not (out / "shop_scores" / f"dt={D}").exists()


def test_a_rules_file_nested_too_deeply_is_a_rules_error(monkeypatch, capsys, raw, tmp_path):
    rules = tmp_path / "deep.toml"
    rules.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = run(monkeypatch, capsys, raw, tmp_path / "out", "--rules", str(rules))
    assert code == 2 and f"rules file {rules}: nested too deeply" in err


# --------------------------------------------------------------------------------------------
# spec v1.1: the optional appeals log and ship_to_region (13.1)


def test_bad_appeal_rows_are_quarantined_with_their_reasons(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    """13.1's three reasons; the good upheld appeal removes its order and is counted."""
    appeals = [
        {"appeal_id": 1, "subject": "order", "subject_id": 100, "decided_at": ts(2026, 3, 10, 3)},
        {"appeal_id": 2, "subject": "review", "subject_id": 101, "decided_at": ts(2026, 3, 10, 3)},
        {"appeal_id": 3, "outcome": "Upheld", "subject_id": 102, "decided_at": ts(2026, 3, 10, 3)},
        {"appeal_id": 4, "subject_id": 103, "decided_at": ts(2026, 3, 10, 16)},  # at the cutoff
        {"appeal_id": 5, "subject_id": None, "decided_at": ts(2026, 3, 10, 3)},
    ]
    write_partition(raw, "appeals", D, appeals)
    out = tmp_path / "out"
    assert run(monkeypatch, capsys, raw, out, "--force")[0] == 0
    q = pl.read_parquet(out / "quarantine" / f"dt={D}" / "part-0.parquet")
    reasons = dict(q.filter(pl.col("log") == "appeals").select("record_key", "reason").rows())
    assert reasons == {
        2: "unknown_enum_value",
        3: "unknown_enum_value",
        4: "at_or_after_partition_cutoff",
        5: "null_in_required_column",
    }
    manifest = json.loads((out / "manifests" / f"dt={D}.json").read_text())
    assert manifest["appeals"] == {
        "read": {"upheld": 1, "rejected": 0},
        "subjects_upheld": {"order": 1, "refund": 0, "session": 0},
    }
    assert manifest["rejected_by_reason"]["appeals"] == {
        "at_or_after_partition_cutoff": 1,
        "null_in_required_column": 1,
        "unknown_enum_value": 2,
    }
    assert manifest["inputs"]["appeals"]["missing_partitions"] == []
    shops = pl.read_parquet(out / "shop_scores" / f"dt={D}" / "part-0.parquet")
    assert shops.select("valid_orders", "appeals_upheld").row(0) == (199, 1)


def test_orders_without_ship_to_region_read_as_unknown_region(
    monkeypatch, capsys, raw, tmp_path
) -> None:
    """A file without the column is normal (13.1); a region exemption never matches its rows."""
    paid = ts(2026, 3, 10, 2)
    rated = {"paid_at": paid, "review_rating": 5}  # in negative_review_rate's denominator
    with_region = [{"order_id": 900 + i, **rated, "ship_to_region": "GD"} for i in range(3)]
    write_partition(raw, "orders", D, with_region, "regions")
    no_region = frame("orders", [{"order_id": 950, **rated}]).drop("ship_to_region")
    no_region.write_parquet(raw / "orders" / f"dt={D}" / "no-region.parquet")
    rules = tmp_path / "rules.toml"
    shipped = Path("pipelines/config/rules.default.toml").read_text("utf-8")
    rules.write_text(
        shipped + '\n[[exemptions]]\nname = "typhoon"\npaid_from = 2026-03-10\n'
        'paid_to = 2026-03-10\nregions = ["GD"]\nexclude_from = ["negative_review_rate"]\n',
        "utf-8",
    )
    out = tmp_path / "out"
    assert run(monkeypatch, capsys, raw, out, "--force", "--rules", str(rules))[0] == 0
    indicators = pl.read_parquet(out / "shop_indicators" / f"dt={D}" / "part-0.parquet")
    reviews = indicators.filter(pl.col("indicator") == "negative_review_rate")
    assert reviews.select("denominator", "excluded").row(0) == (1, 3)  # GD out, unknown kept
    manifest = json.loads((out / "manifests" / f"dt={D}.json").read_text())
    typhoon = next(e for e in manifest["exemptions"] if e["name"] == "typhoon")
    assert typhoon["rows_matched"] == {
        "orders": 3,
        "refunds": 0,
        "cs_sessions": 0,
    }
