"""The benchmark harness end to end at the hidden XS scale (no timing assertions: CI machines vary).

XS generates 5 days of a tiny marketplace and scores them under a 2-day window, so the whole
harness (generation, floor, backfill, nightly, from-scratch, Ray, the SQL peer, the window runs
under 2 and 4 days, identity checks, JSON, table) runs in well under a minute through the real
`expscore bench` command.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import runpy
import shutil
import sys
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.cli.main import main
from pipelines.devtools import bench, bench_peer
from pipelines.devtools.bench import children, data, harness, machine, windows
from pipelines.errors import InputError
from scoring.contract import PUBLISHED_TABLES, TABLE_SCHEMAS
from tests.builders import DEFAULT_RULES_PATH


@pytest.fixture(scope="module")
def xs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("bench")
    result_path = work / "result.json"
    argv = ["expscore", "bench", "--scale", "xs", "--repeats", "1", "--work", str(work)]
    argv += ["--json", str(result_path)]
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(sys, "argv", argv)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        monkeypatch.undo()
    assert exit_info.value.code == 0
    return work, json.loads(result_path.read_text("utf-8"))


WINDOW_SCENARIOS = {"window2_prep", "window2_nightly", "window4_prep", "window4_nightly"}


def test_json_reports_every_scenario_with_its_figures(xs_run) -> None:
    _, result = xs_run
    assert result["scale"]["name"] == "XS"
    assert result["scale"]["window_days"] == 2
    assert result["scale"]["days_generated"] == 5  # the 4-day window run's date is the 5th
    assert set(result["machine"]) >= {"cpu_count", "cpus_usable", "memory_bytes", "packages"}
    assert set(result["scenarios"]) == set(bench.SCENARIOS) | WINDOW_SCENARIOS
    assert result["skipped"] == {}
    rows = result["window"]["rows_total"]
    assert rows > 0 and set(result["window"]["rows"]) == {
        "orders",
        "refunds",
        "logistics",
        "cs_sessions",
        "appeals",
    }
    for name, scenario in result["scenarios"].items():
        assert scenario["wall_s"] > 0, name
        assert scenario["cpu_s"] > 0, name
        assert scenario["peak_rss_bytes"] > 10 * 1024**2, name  # a Python process, not the harness
        assert scenario["rows_per_s"] > 0, name
        assert scenario["ratio_to_floor"] > 0, name
        assert len(scenario["runs"]) == 1, name
        assert all(r["exit_code"] == 0 for r in scenario["runs"]), name
    for name in ("backfill", "nightly", "scratch", "ray", *WINDOW_SCENARIOS):
        stages = result["scenarios"][name]["stages"]
        assert {"state", "score", "publish"} <= set(stages), name
        assert all(s["seconds"] >= 0 and "rows_per_s" in s for s in stages.values())
    assert set(result["scenarios"]["peer"]["stages"]) == set(bench_peer.STEPS)
    assert len(result["scenarios"]["backfill"]["per_day_last_repeat"]) == 2
    prep = result["scenarios"]["window4_prep"]["per_day_last_repeat"]
    assert len(prep) == bench.WINDOW_WARMUP_NIGHTS + 1
    shards = {
        name: result["scenarios"][name]["runs"][0]["extra"]["per_day"][-1]["execution"]["shards"]
        for name in ("backfill", "nightly", "scratch", "ray")
    }
    assert set(shards.values()) == {result["window"]["shards"]}  # a whole window's count
    ray_run = result["scenarios"]["ray"]["runs"][0]
    assert ray_run["peak_tree_rss_bytes"] > ray_run["peak_rss_bytes"]  # Ray's own processes
    disk = result["disk_at_start"]
    assert disk["checked"] and 0 < disk["needed_bytes"] < disk["free_bytes"]


def test_floor_decodes_every_raw_row_of_the_nightly_window(xs_run) -> None:
    _, result = xs_run
    floor = result["scenarios"]["floor"]
    assert result["floor_seconds"] == floor["query_s"] > 0
    counted = {log: v["rows"] for log, v in floor["runs"][0]["extra"]["logs"].items()}
    assert counted == {log: n for log, n in result["window"]["rows"].items() if n}
    day = result["scenarios"]["floor_day"]
    counted = {log: v["rows"] for log, v in day["runs"][0]["extra"]["logs"].items()}
    assert counted == {log: n for log, n in result["window"]["new_day_rows"].items() if n}
    assert day["query_s"] > 0 and day["rows"] < floor["rows"]


def test_nightly_and_from_scratch_tables_are_compared(xs_run) -> None:
    _, result = xs_run
    comparison = result["nightly_vs_scratch"]
    assert comparison["identical"] is True
    assert set(comparison["tables"]) == set(PUBLISHED_TABLES)
    assert comparison["speedup"] > 0
    assert result["targets"] == []  # issue 19's targets are for M and mid only


def test_ray_runs_the_same_night_with_identical_tables(xs_run) -> None:
    _, result = xs_run
    ray = result["ray_vs_local"]
    assert ray["identical"] is True and ray["ratio"] > 0
    assert set(ray["tables"]) == set(PUBLISHED_TABLES)
    execution = result["scenarios"]["ray"]["runs"][0]["extra"]["per_day"][0]["execution"]
    assert execution["executor"] == "ray"
    assert not (Path(result["work"]) / "runs" / "ray").exists()  # deleted once compared


def test_the_state_after_the_night_is_measured(xs_run) -> None:
    _, result = xs_run
    state = result["state"]["nightly"]
    assert state["bytes"] == sum(state["by_table"].values()) > 0
    assert {"orders", "events", "manifests"} <= set(state["by_table"])
    assert "exchange" not in state["by_table"]
    assert result["state"]["scratch"]["bytes"] > 0


def test_window_runs_compare_one_date_under_each_window_length(xs_run) -> None:
    work, result = xs_run
    windows = result["windows"]
    assert windows["days"] == [2, 4]
    assert windows["date"] == "2026-01-05"
    for w, leg in windows["legs"].items():
        assert leg["nightly_wall_s"] > 0 and leg["floor_s"] > 0, w
        assert leg["state"]["bytes"] > 0 and leg["shards"] >= 1, w
        nightly = result["scenarios"][f"window{w}_nightly"]
        assert nightly["runs"][0]["extra"]["per_day"][0]["date"] == "2026-01-05"
    assert windows["legs"]["2"]["nightly_to_smallest"] == 1.0
    assert windows["legs"]["4"]["rows_total"] > windows["legs"]["2"]["rows_total"]
    assert (Path(work) / "XS-seed7" / "rules-w4.toml").is_file()
    assert not list((Path(work) / "XS-seed7" / "runs").glob("window*"))  # deleted once measured


def test_the_sql_peer_publishes_what_expscore_publishes(xs_run) -> None:
    """The peer (plain SQL from SCORING.md) and expscore agree on every value the peer computes
    for the nightly date: scores, indicators, items, the weights that need no D-1."""
    _, result = xs_run
    day = dt.date.fromisoformat(result["window"]["nightly_date"])
    peer = result["peer"]
    assert peer["compared_with"] == "nightly"
    assert peer["agreement"]["all_agree"] is True
    assert peer["nightly_to_peer"] > 0 and peer["scratch_to_peer"] > 0
    strict = bench.compare_peer(
        Path(result["work"]) / "runs" / "peer",
        Path(result["work"]) / "runs" / "nightly",
        day,
        tolerance=1e-9,
    )
    assert strict["all_agree"] is True
    shops = strict["tables"]["shop_scores"]
    assert shops["rows"]["expscore"] == shops["rows"]["peer"] == shops["rows"]["both"] > 0
    assert set(shops["columns"]) == set(bench_peer_columns("shop_scores"))  # appeals_upheld too
    indicators = strict["tables"]["shop_indicators"]["columns"]
    assert set(indicators) == set(bench_peer_columns("shop_indicators"))  # excluded too
    assert "weight" not in strict["tables"]["shop_traffic_weights"]["columns"]  # needs D-1
    assert {t: c["expscore_only"] for t, c in strict["tables"].items()} == {
        "shop_scores": [],
        "shop_indicators": [],
        "item_scores": [],
        "shop_traffic_weights": ["weight"],
        "item_traffic_weights": [],
    }
    scored = pl.read_parquet(Path(result["work"]) / "runs" / "peer" / "shop_scores.parquet")
    assert scored.filter(pl.col("status") == "scored").height > 0  # scores, not only nulls


def bench_peer_columns(table: str) -> list[str]:
    """The published columns of `table` but its key."""
    return [c for c in TABLE_SCHEMAS[table] if c not in bench.PEER_KEYS[table]]


OVERRIDES = """
[categories.1002.dimension_weights]
product = 0.5
logistics = 0.2
service = 0.3
[categories.1002.indicators.quality_refund_rate]
weight = 0.7
k = 5
[categories.1002.indicators.negative_review_rate]
weight = 0.3
[categories.1003.indicators.delivery_hours]
knots = [[12.0, 5.0], [36.0, 4.5], [120.0, 3.0]]
k = 40
"""


def test_the_sql_peer_follows_the_rules_file(
    xs_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules are data for the peer too: another window, minimums, k and per-category overrides
    of dimension weights, indicator weights, k and knots give expscore's figures (within 1e-9)."""
    work, _ = xs_run
    raw = bench.layout_for(work, bench.SCALES["XS"], bench.DEFAULT_SEED).raw
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    rules = tmp_path / "rules.toml"
    text = shipped.replace("window_days = 30", "window_days = 3")
    text = text.replace("min_orders = 30", "min_orders = 10")
    text = text.replace("min_item_orders = 5", "min_item_orders = 3").replace(
        "k_item = 10", "k_item = 4"
    )
    rules.write_text(text + OVERRIDES, "utf-8")
    day = dt.date(2026, 1, 5)
    out = tmp_path / "out"
    argv = ["expscore", "run", "--date", day.isoformat(), "--raw", str(raw), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, "--rules", str(rules), "--force"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    files = bench.raw_partition_files(raw, bench.window_dates(day, 3))
    spec = {
        "date": day.isoformat(),
        "rules": str(rules),
        "files": files,
        "out": str(tmp_path / "peer"),
    }
    ran = bench_peer.run(spec)
    assert set(ran["steps"]) == set(bench_peer.STEPS)
    agreement = bench.compare_peer(tmp_path / "peer", out, day, tolerance=1e-9)
    assert agreement["all_agree"] is True, agreement
    shops = pl.read_parquet(tmp_path / "peer" / "shop_scores.parquet")
    assert set(shops["main_category_id"].drop_nulls()) >= {1002, 1003}  # the overrides apply
    assert shops.filter(pl.col("status") == "scored").height > shops.height // 2


# Three overlapping exemptions: the south's holiday moves the pickup deadline furthest; the
# courier strike has an earlier ship_by (the latest of the matching ones wins); the north's
# snow excludes pickup_on_time_rate, shares Shanghai with the south (its orders get the south's
# ship_by too) and has no ship_by. Together they name every indicator an exemption may name.
EXEMPTIONS = """
[[exemptions]]
name = "spring_festival_south"
paid_from = 2026-02-10
paid_to = 2026-02-12
regions = ["GD", "ZJ", "JS", "SH", "FJ"]
ship_by = 2026-02-15T00:00:00+08:00
exclude_from = [
    "delivery_hours", "track_anomaly_rate", "delivery_promise_rate", "negative_review_rate",
]

[[exemptions]]
name = "courier_strike"
paid_from = 2026-02-09
paid_to = 2026-02-11
ship_by = 2026-02-13T20:00:00
exclude_from = [
    "door_delivery_rate", "quality_refund_rate", "cs_response_rate", "cs_satisfaction_rate",
    "refund_refusal_rate", "refund_handling_hours",
]

[[exemptions]]
name = "snow_north"
paid_from = 2026-02-08
paid_to = 2026-02-12
regions = ["SH", "BJ", "HE", "SD", "TJ", "LN"]
exclude_from = ["pickup_on_time_rate"]
"""
APPEAL_ID = 8 * 10**17  # far above the generator's appeal ids (order_id * 16 + slot)


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["expscore", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)


def _read_log(raw: Path, log: str, columns: Sequence[str]) -> pl.DataFrame:
    """Some columns of every file of a raw log, timestamps as UTC instants (files differ in
    widths, extras and time zones on purpose)."""
    frames = []
    for path in sorted((raw / log).glob("dt=*/*.parquet")):
        frame = pl.read_parquet(path, columns=list(columns))
        frames.append(
            frame.select(
                (
                    pl.col(c).dt.replace_time_zone("UTC")
                    if frame.schema[c] == pl.Datetime and frame.schema[c].time_zone is None
                    else pl.col(c)
                )
                .cast(pl.Datetime("us", "UTC") if frame.schema[c] == pl.Datetime else pl.Int64)
                .alias(c)
                if c != "is_abnormal"
                else pl.col(c)
                for c in columns
            )
        )
    return pl.concat(frames)


def _appeal_rows(raw: Path, start: dt.datetime, cutoff: dt.datetime) -> tuple[list[dict], int]:
    """Appeals on subjects of the window: upheld (one of them after a rejection, its upheld
    appeal sent twice), rejected only, and upheld in rows the quarantine rejects (13.1); and
    the number of subjects in V, R and C that the upheld ones remove."""
    orders = (
        _read_log(raw, "orders", ("order_id", "shop_id", "paid_at", "is_abnormal"))
        .group_by("order_id")
        .agg(pl.col("shop_id").first(), pl.col("paid_at").first(), pl.col("is_abnormal").any())
        .filter(~pl.col("is_abnormal"), pl.col("paid_at").is_between(start, cutoff, closed="left"))
    )
    ids = orders.sort("order_id").unique("shop_id", keep="first").sort("order_id")["order_id"]
    refunds = (
        _read_log(raw, "refunds", ("refund_id", "requested_at", "is_abnormal"))
        .group_by("refund_id")
        .agg(pl.col("requested_at").first(), pl.col("is_abnormal").any())
        .filter(~pl.col("is_abnormal"), pl.col("requested_at").is_between(start, cutoff, "left"))
        .sort("refund_id")
    )
    sessions = _read_log(raw, "cs_sessions", ("session_id", "started_at")).filter(
        pl.col("started_at").is_between(start, cutoff, closed="left")
    )
    o1, o2, o3, o4, o5 = ids[:5]
    r1, s1 = refunds["refund_id"][0], sessions["session_id"].min()
    rows = [  # (partition day, appeal_id offset, shop, subject, id, outcome, decided hour UTC)
        (12, 1, 1, "order", o1, "upheld", 2),  # the shop is reported, never matched (13.1)
        (12, 2, 1, "order", o2, "rejected", 3),
        (13, 3, 1, "order", o2, "upheld", 1),
        (13, 4, 1, "order", o3, "rejected", 1),
        (13, 5, None, "order", o4, "upheld", 1),  # null in a required column: quarantined
        (12, 6, 1, "order", o5, "upheld", 17),  # 01:00 of the 13th local, in dt=12: quarantined
        (13, 7, 1, "order", o5, "Upheld", 2),  # unknown enum value: quarantined
        (13, 8, 1, "refund", r1, "upheld", 4),
        (13, 9, 1, "session", s1, "upheld", 5),
    ]
    appeals = [
        {
            "dt": day,
            "appeal_id": APPEAL_ID + offset,
            "shop_id": shop,
            "subject": subject,
            "subject_id": int(subject_id),
            "outcome": outcome,
            "decided_at": dt.datetime(2026, 2, day, hour, tzinfo=dt.UTC),
        }
        for day, offset, shop, subject, subject_id, outcome, hour in rows
    ]
    appeals.append(dict(appeals[2]))  # a copy of an appeal counts once (2.5)
    return appeals, 4  # o1, o2, r1, s1


def test_the_sql_peer_applies_appeals_regions_and_exemptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SCORING.md 13 in the peer: a generated marketplace, with orders files with and without
    `ship_to_region`, upheld, rejected and quarantined appeals of orders, refunds and sessions,
    and two overlapping exemptions (a region list, ship_by dates, every indicator an exemption
    may name), scored by `expscore run` and by the peer: every column the peer computes agrees
    to 1e-9, `excluded` and `appeals_upheld` included."""
    raw, out, peer = tmp_path / "raw", tmp_path / "out", tmp_path / "peer"
    generate = ["generate", "--out", str(raw), "--start", "2026-02-08", "--days", "6"]
    _run(monkeypatch, [*generate, "--shops", "20", "--orders-per-day", "200", "--seed", "3"])
    day = dt.date(2026, 2, 13)
    # a file without the optional region beside one with it, and a partition without it at all
    for path in sorted((raw / "orders" / "dt=2026-02-12").glob("*.parquet"))[-1:] + sorted(
        (raw / "orders" / "dt=2026-02-11").glob("*.parquet")
    ):
        pl.read_parquet(path).drop("ship_to_region", strict=False).write_parquet(path)
    start = dt.datetime(2026, 2, 7, 16, tzinfo=dt.UTC)  # 00:00 of 2026-02-08 in tz
    appeals, removed = _appeal_rows(raw, start, dt.datetime(2026, 2, 13, 16, tzinfo=dt.UTC))
    for partition in (12, 13):
        folder = raw / "appeals" / f"dt=2026-02-{partition}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{k: v for k, v in a.items() if k != "dt"} for a in appeals if a["dt"] == partition]
        pl.DataFrame(rows).write_parquet(folder / "peer-test.parquet")
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    rules = tmp_path / "rules.toml"
    text = shipped.replace("window_days = 30", "window_days = 6")
    rules.write_text(text.replace("min_orders = 30", "min_orders = 10") + EXEMPTIONS, "utf-8")
    run = ["run", "--date", day.isoformat(), "--raw", str(raw), "--out", str(out)]
    _run(monkeypatch, [*run, "--rules", str(rules), "--force"])

    files = bench.raw_partition_files(raw, bench.window_dates(day, 6))
    assert set(files["appeals"]) == {"2026-02-12", "2026-02-13"} or len(files["appeals"]) > 2
    spec = {"date": day.isoformat(), "rules": str(rules), "files": files, "out": str(peer)}
    bench_peer.run(spec)
    agreement = bench.compare_peer(peer, out, day, tolerance=1e-9)
    assert agreement["all_agree"] is True, agreement
    for table in ("shop_scores", "shop_indicators"):
        compared = agreement["tables"][table]
        assert compared["rows"]["expscore"] == compared["rows"]["peer"] == compared["rows"]["both"]
        assert set(compared["columns"]) == set(bench_peer_columns(table))
        assert compared["expscore_only"] == []

    # what was compared is not trivial: appeals removed subjects, exemptions rows, per indicator
    shops = pl.read_parquet(peer / "shop_scores.parquet")
    assert shops["appeals_upheld"].sum() >= removed
    excluded = dict(
        pl.read_parquet(peer / "shop_indicators.parquet")
        .group_by("indicator")
        .agg(pl.col("excluded").sum())
        .iter_rows()
    )
    assert excluded.pop("platform_help_rate") == 0
    assert all(n > 0 for n in excluded.values()), excluded
    assert shops.filter(pl.col("status") == "scored").height > shops.height // 2


def test_the_peer_reads_exemptions_and_refuses_only_keys_it_does_not_apply(
    tmp_path: Path,
) -> None:
    """13.3 in the rules: TOML dates, `ship_by` with an offset or (without) in the rules' time
    zone; an exemption key the spec does not define is refused, not ignored."""
    rules = tmp_path / "rules.toml"
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    exemptions = (
        '[[exemptions]]\nname = "x"\npaid_from = 2026-02-10\npaid_to = 2026-02-11\n'
        'regions = ["GD"]\nship_by = 2026-02-13T08:00:00\nexclude_from = ["delivery_hours"]\n'
        '[[exemptions]]\nname = "y"\npaid_from = 2026-02-11\npaid_to = 2026-02-11\n'
        "ship_by = 2026-02-14T00:00:00+08:00\n"
    )
    rules.write_text(shipped + exemptions, "utf-8")
    _, x, y = bench_peer.exemptions(bench_peer.read_rules(rules))  # the shipped one first
    assert (x.paid_from, x.paid_to, x.regions) == (
        dt.date(2026, 2, 10),
        dt.date(2026, 2, 11),
        ("GD",),
    )
    assert x.ship_by == dt.datetime(2026, 2, 13, 0, 0, tzinfo=dt.UTC)  # 08:00 in Asia/Shanghai
    assert x.exclude_from == {"delivery_hours"}
    assert y.ship_by == dt.datetime(2026, 2, 13, 16, 0, tzinfo=dt.UTC)
    assert y.regions == () and y.exclude_from == frozenset()
    rules.write_text(shipped + exemptions + 'reason = "typhoon"\n', "utf-8")
    with pytest.raises(bench_peer.PeerRulesError, match="reason"):
        bench_peer.read_rules(rules)


def test_interp_sql_is_exact_at_knots_and_flat_beyond() -> None:
    knots = [[0.3, 0.0], [0.0, 100.0], [0.01, 95.0], [0.06, 60.0]]  # unsorted on purpose
    expression = bench_peer.interp_sql("x", knots)
    cases = [-1.0, 0.0, 0.005, 0.01, 0.03, 0.06, 0.2, 0.3, 2.0]
    values = duckdb.sql(
        f"SELECT x, {expression} FROM unnest([{', '.join(f'{c!r}e0' for c in cases)}]) t(x)"
    ).fetchall()
    got = dict(values)
    assert got[-1.0] == 100.0 and got[0.0] == 100.0 and got[0.01] == 95.0
    assert got[0.06] == 60.0 and got[0.3] == 0.0 and got[2.0] == 0.0
    assert got[0.005] == pytest.approx(97.5) and got[0.03] == pytest.approx(95.0 - 35.0 * 0.4)
    assert got[0.2] == pytest.approx(60.0 * (0.1 / 0.24))


def _rules_with(tmp_path: Path, exemption: str) -> Path:
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text(shipped + '[[exemptions]]\nname = "x"\n' + exemption, "utf-8")
    return rules


def test_without_a_rules_file_the_peer_reads_the_shipped_rules() -> None:
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    assert bench_peer.read_rules(None) == tomllib.loads(shipped)


@pytest.mark.parametrize(
    ("exemption", "message"),
    [
        (
            'paid_from = 2026-02-10\npaid_to = 2026-02-11\nexclude_from = ["platform_help_rate"]\n',
            "exemptions[1] excludes what the peer cannot: platform_help_rate",
        ),
        (
            "paid_from = 2026-02-10\npaid_to = 2026-02-11\nship_by = 2026-02-13\n",
            "exemption 'x': ship_by is not a datetime",
        ),
        (
            "paid_from = 2026-02-10T00:00:00\npaid_to = 2026-02-11\n",
            "an exemption date is a datetime: 2026-02-10 00:00:00",
        ),
    ],
)
def test_the_peer_refuses_exemptions_it_would_read_otherwise_than_13_3(
    tmp_path: Path, exemption: str, message: str
) -> None:
    """13.3 allows every indicator but platform_help_rate, a ship_by instant and calendar
    dates: anything else would have the peer compute another thing than expscore."""
    with pytest.raises(bench_peer.PeerRulesError) as refused:
        bench_peer.exemptions(bench_peer.read_rules(_rules_with(tmp_path, exemption)))
    assert str(refused.value) == message


def test_an_exemption_date_may_be_an_iso_string(tmp_path: Path) -> None:
    rules = _rules_with(tmp_path, 'paid_from = "2026-02-10"\npaid_to = 2026-02-11\n')
    listed = bench_peer.exemptions(bench_peer.read_rules(rules))
    assert (listed[-1].paid_from, listed[-1].paid_to) == (
        dt.date(2026, 2, 10),
        dt.date(2026, 2, 11),
    )


def test_literals_read_back_as_the_values_they_spell() -> None:
    """Floats as DOUBLE (a bare 0.005 would be a DECIMAL), instants with their offset."""
    instant = dt.datetime(2026, 2, 13, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    values = [True, False, 7, 0.005, 2.5e-20, dt.date(2026, 2, 10), instant, "it's"]
    literals = [bench_peer._lit(v) for v in values]
    assert duckdb.sql(f"SELECT {', '.join(literals)}").fetchall() == [tuple(values)]
    types = duckdb.sql(f"SELECT {', '.join(f'typeof({x})' for x in literals)}").fetchall()
    assert types[0] == (
        "BOOLEAN", "BOOLEAN", "INTEGER", "DOUBLE", "DOUBLE", "DATE", "TIMESTAMP WITH TIME ZONE",
        "VARCHAR",
    )  # fmt: skip


def test_rules_without_category_overrides_need_no_case_over_the_rule_key() -> None:
    def expression(category: int | None) -> str:
        return f"knots_of_{category}"

    assert bench_peer._by_rule_key({}, expression) == "knots_of_None"
    overrides = {"categories": {"1003": {}, "1001": {}}}
    assert bench_peer._by_rule_key(overrides, expression) == (
        "CASE WHEN rule_key = 1001 THEN knots_of_1001 WHEN rule_key = 1003 THEN knots_of_1003 "
        "ELSE knots_of_None END"
    )


@pytest.mark.parametrize("partitions", [{}, {dt.date(2026, 2, 13): []}])
def test_a_log_without_files_in_the_window_reads_as_no_rows_of_its_columns(
    partitions: dict,
) -> None:
    """A window may hold no partition of a log (no appeal in it, say): no rows, the columns."""
    kept = duckdb.sql(bench_peer._current("appeals", partitions, "Asia/Shanghai", "appeal_id"))
    assert kept.fetchall() == []
    assert kept.columns == [name for name, _ in bench_peer.COLUMNS["appeals"]]


def test_a_region_list_matches_orders_shipped_there_and_nothing_else() -> None:
    """13.3: a region list reaches orders only, by ship_to_region (a null region matches no
    list), on the local date of payment."""
    gd = bench_peer.Exemption(
        "x", dt.date(2026, 2, 10), dt.date(2026, 2, 11), ("GD",), None, frozenset()
    )
    assert bench_peer._matches(gd, "refund", "Asia/Shanghai") == "false"
    assert bench_peer._matches(gd, "session", "Asia/Shanghai") == "false"
    orders = """SELECT * FROM (VALUES
        (1, TIMESTAMPTZ '2026-02-10 02:00:00+00', 'GD'),
        (2, TIMESTAMPTZ '2026-02-10 02:00:00+00', 'SH'),
        (3, TIMESTAMPTZ '2026-02-10 02:00:00+00', NULL),
        (4, TIMESTAMPTZ '2026-02-11 17:00:00+00', 'GD'),
        (5, TIMESTAMPTZ '2026-02-09 16:30:00+00', 'GD')
    ) t(order_id, paid_at, ship_to_region)"""
    predicate = bench_peer._matches(gd, "order", "Asia/Shanghai")
    matched = duckdb.sql(f"SELECT order_id FROM ({orders}) WHERE {predicate} ORDER BY 1")
    assert matched.fetchall() == [(1,), (5,)]  # 4 is paid on the 12th and 5 on the 10th, local


def test_the_peer_as_a_command(
    xs_run, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m pipelines.devtools.bench_peer SPEC.json`, as the harness runs it: one JSON line
    with its steps and the rows of each table written; a spec without rules means the shipped ones;
    the spec's memory limit bounds DuckDB; tables an earlier run left in its output folder go;
    without a spec, a usage line and exit code 2."""
    work, result = xs_run
    raw = bench.layout_for(work, bench.SCALES["XS"], bench.DEFAULT_SEED).raw
    day = result["window"]["nightly_date"]
    files = bench.raw_partition_files(raw, bench.window_dates(dt.date.fromisoformat(day), 2))
    shipped = DEFAULT_RULES_PATH
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "shop_labels.parquet").write_bytes(b"an earlier run's")
    for name, rules in (("default", None), ("shipped", str(shipped))):
        spec = {"date": day, "files": files, "out": str(tmp_path / name)}
        spec |= {"memory_limit_bytes": 512 * 2**20} | ({"rules": rules} if rules else {})
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(spec), "utf-8")
        assert bench_peer.main([str(path)]) == 0
        [line] = capsys.readouterr().out.splitlines()
        printed = json.loads(line)
        assert set(printed["steps"]) == set(bench_peer.STEPS)
        assert printed["rows"] == {
            table: pl.read_parquet(tmp_path / name / f"{table}.parquet").height
            for table in bench_peer.TABLES
        }
        assert printed["rows"]["shop_scores"] > 0
        written = sorted(p.name for p in (tmp_path / name).glob("*.parquet"))
        assert written == sorted(f"{table}.parquet" for table in bench_peer.TABLES)
    for table in bench_peer.TABLES:  # the peer writes rows in no particular order
        assert_frame_equal(
            pl.read_parquet(tmp_path / "default" / f"{table}.parquet"),
            pl.read_parquet(tmp_path / "shipped" / f"{table}.parquet"),
            check_row_order=False,
            rel_tol=1e-12,
            abs_tol=1e-12,
        )
    starved = {"date": day, "files": files, "out": str(tmp_path / "starved")}
    with pytest.raises(duckdb.OutOfMemoryException):
        bench_peer.run({**starved, "memory_limit_bytes": 2**20})

    monkeypatch.setattr(sys, "argv", ["bench_peer"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the module is imported already
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_module("pipelines.devtools.bench_peer", run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "usage: python -m pipelines.devtools.bench_peer SPEC.json\n"


def test_compare_outputs_sees_a_changed_value(xs_run, tmp_path: Path) -> None:
    _, result = xs_run
    day = dt.date.fromisoformat(result["window"]["nightly_date"])
    nightly = Path(result["work"]) / "runs" / "nightly"
    copy = tmp_path / "copy"
    shutil.copytree(nightly, copy)
    files = sorted((copy / "shop_scores" / f"dt={day}").glob("*.parquet"))
    frame = pl.read_parquet(files)
    frame.with_columns(score=pl.col("score").reverse()).write_parquet(files[0])
    for extra in files[1:]:
        extra.unlink()
    comparison = bench.compare_outputs(nightly, copy, day)
    assert comparison["identical"] is False
    assert comparison["tables"]["shop_scores"]["identical"] is False
    assert comparison["tables"]["item_scores"]["identical"] is True


def test_data_is_reused_and_the_table_is_short(xs_run) -> None:
    work, result = xs_run
    layout = bench.layout_for(work, bench.SCALES["XS"], bench.DEFAULT_SEED)
    reused = bench.ensure_data(layout, bench.SCALES["XS"], bench.DEFAULT_SEED, echo=print)
    assert reused["reused"] is True  # 5 days generated serve the 3 the scale alone needs
    assert reused["params"]["days"] == 5
    table = bench.format_table(result)
    assert len(table.splitlines()) < 30
    for name in result["scenarios"]:
        assert any(line.startswith(name) for line in table.splitlines())
    assert "SQL peer:" in table and "every compared column: yes" in table
    assert "ray vs local nightly:" in table and "window lengths" in table


def test_a_longer_generation_begins_with_the_days_of_a_shorter_one(tmp_path: Path) -> None:
    """What lets the harness serve a 31-day scenario from 61 generated days."""
    xs = bench.SCALES["XS"]
    short, long = (bench.Layout(tmp_path / name) for name in ("short", "long"))
    bench.ensure_data(short, xs, 11, echo=lambda _: None, days=2)
    bench.ensure_data(long, xs, 11, echo=lambda _: None, days=4)
    files = sorted(p.relative_to(short.raw) for p in short.raw.rglob("*.parquet"))
    assert files and files == sorted(
        p.relative_to(long.raw)
        for p in long.raw.rglob("*.parquet")
        if p.parent.name in {"dt=2026-01-01", "dt=2026-01-02"}
    )
    for path in files:
        assert pl.read_parquet(short.raw / path).equals(pl.read_parquet(long.raw / path)), path


def _figures(nightly_wall: float, identical: bool, peer_wall: float | None = 60.0) -> dict:
    """A result as run_bench returns it, with only what the targets read."""
    return {
        "scenarios": {
            "nightly": {"wall_s": nightly_wall, "peak_rss_bytes": 2 * bench.GIB},
            "scratch": {"wall_s": 55.0, "peak_rss_bytes": 6 * bench.GIB},
            "backfill": {"wall_s": 200.0},
            "ray": {"wall_s": 1.2 * nightly_wall},
            "peer": {"wall_s": peer_wall} if peer_wall else {"skipped": "--skip"},
            "window30_nightly": {"wall_s": nightly_wall},
            "window60_nightly": {"wall_s": 1.1 * nightly_wall},
        },
        "nightly_vs_scratch": {"speedup": 55.0 / nightly_wall, "identical": identical},
        "ray_vs_local": {"ratio": 1.2, "identical": identical},
        "peer": {
            "nightly_to_peer": nightly_wall / peer_wall if peer_wall else None,
            "scratch_to_peer": 55.0 / peer_wall if peer_wall else None,
        },
        "windows": {
            "legs": {
                "30": {"nightly_wall_s": nightly_wall},
                "60": {"nightly_wall_s": 1.1 * nightly_wall},
            }
        },
        "state": {"nightly": {"bytes": 3_500_000_000, "by_table": {}}},
    }


def test_the_backfill_gets_the_shard_count_of_a_whole_window() -> None:
    assert bench.full_window_shards(0) == 1
    assert bench.full_window_shards(4_037_156) == 2  # mid: one day alone would give 1
    assert bench.full_window_shards(42_000_000) == 11


def test_targets_are_issue_19_s_and_pass_and_fail_on_the_figures() -> None:
    good = {t["id"]: t["passed"] for t in bench.evaluate_targets("M", _figures(9.0, True))}
    assert good == dict.fromkeys(
        [
            "m_nightly_wall",
            "m_nightly_rss",
            "m_scratch_wall",
            "m_scratch_rss",
            "m_backfill_wall",
            "m_state_disk",
            "m_nightly_identical",
            "m_window60_ratio",
            "m_ray_ratio",
            "m_ray_identical",
        ],
        True,
    )
    bad = {t["id"]: t for t in bench.evaluate_targets("M", _figures(20.0, False))}
    assert bad["m_nightly_wall"]["passed"] is False
    assert bad["m_nightly_identical"]["passed"] is False
    assert bad["m_ray_identical"]["passed"] is False
    assert bad["m_nightly_rss"]["passed"] is True
    assert bad["m_state_disk"]["value"] == 3.5  # GB, as the issue states it
    mid = {t["id"]: t for t in bench.evaluate_targets("mid", _figures(9.0, True))}
    assert set(mid) == {"mid_nightly_vs_peer", "mid_scratch_vs_peer"}
    assert mid["mid_nightly_vs_peer"]["value"] == pytest.approx(0.15)
    assert mid["mid_nightly_vs_peer"]["passed"] is True  # 9 s against 60 s: under 1/6
    assert mid["mid_scratch_vs_peer"]["passed"] is True
    slow = {t["id"]: t["passed"] for t in bench.evaluate_targets("mid", _figures(20.0, True))}
    assert slow["mid_nightly_vs_peer"] is False
    unmeasured = {
        t["id"]: t["passed"] for t in bench.evaluate_targets("mid", _figures(9.0, True, None))
    }
    assert unmeasured == {"mid_nightly_vs_peer": None, "mid_scratch_vs_peer": None}
    assert bench.evaluate_targets("S", _figures(9.0, True)) == []


def test_the_table_shows_every_target_with_its_verdict(xs_run) -> None:
    _, result = xs_run
    at_m = {**result, "targets": bench.evaluate_targets("M", _figures(20.0, False))}
    at_m["targets"][0]["value"], at_m["targets"][0]["passed"] = None, None
    lines = bench.format_table(at_m).splitlines()
    start = lines.index("targets of issue 19 (XS):")
    verdicts = lines[start + 1 :]
    assert len(verdicts) == len(at_m["targets"]) == 10
    assert verdicts[0].startswith("  n/a  nightly run: not measured (<= 10 s)")
    assert "  FAIL nightly and from-scratch tables identical: False (must be true)" in verdicts
    assert "  PASS from-scratch run: 55 s (<= 60 s)" in verdicts


def test_the_busy_warning_ignores_the_harness_s_own_load_at_the_end() -> None:
    """The end's one-minute load average counts the harness's last runs (2.04 after this
    project's M bench): only CPUs busy while the harness waits, or low memory, mean other work."""

    def machine(start_load: float, end_load: float, end_busy: float | None, free: float) -> dict:
        idle = {"load_average": [0.4, 0.9, 1.2], "memory_available_bytes": 20 * bench.GIB}
        return {
            "cpus_usable": 2,
            "memory_bytes": 24 * bench.GIB,
            "at_start": {**idle, "load_average": [start_load, 1.0, 1.0], "cpus_busy": 0.1},
            "load_average": [end_load, 2.1, 2.0],
            "cpus_busy": end_busy,
            "memory_available_bytes": free * bench.GIB,
        }

    assert bench.busy_warning(machine(0.4, 2.04, 0.05, 20)) is None
    assert bench.busy_warning(machine(0.4, 2.04, None, 20)) is None  # no /proc/stat
    end = bench.busy_warning(machine(0.4, 0.3, 1.6, 20))
    assert end is not None and "at the end (1.6 CPUs busy on 2 CPUs" in end
    start = bench.busy_warning(machine(3.2, 0.3, 0.05, 20))
    assert start is not None and "at the start (load 3.2 on 2 CPUs" in start
    memory = bench.busy_warning(machine(0.4, 0.3, 0.05, 8))
    assert memory is not None and "at the end" in memory


def test_cpus_busy_is_a_share_of_the_machine_s_cpus() -> None:
    busy = bench.cpus_busy(0.2)
    if busy is None:
        pytest.skip("no /proc/stat on this platform")
    assert 0.0 <= busy <= (os.cpu_count() or 1)


def test_unknown_scale_is_a_usage_error(monkeypatch, capsys, tmp_path: Path) -> None:
    argv = ["expscore", "bench", "--scale", "XXL", "--work", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "S|mid|M|L" in capsys.readouterr().err


def test_a_child_past_the_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    m = bench.measure(sleeper, tmp_path / "sleep.log", limits=bench.Limits(timeout_s=0.5))
    assert m.killed == "timeout"
    assert not m.ok
    assert m.exit_code != 0  # the sleeper did not run its 30 s to a clean exit
    assert "killed after the --timeout" in bench.failure_text(m, tmp_path / "sleep.log")


def test_a_child_past_the_memory_limit_is_killed_and_reported(tmp_path: Path) -> None:
    hog = [sys.executable, "-c", "import time; x = bytearray(400 * 2**20); time.sleep(30)"]
    limits = bench.Limits(max_rss_bytes=200 * 2**20)
    m = bench.measure(hog, tmp_path / "hog.log", limits=limits)
    assert m.killed == "rss_limit"
    assert m.peak_rss_bytes > 200 * 2**20
    assert "max-rss" in bench.failure_text(m, tmp_path / "hog.log")


def test_a_failed_backfill_is_recorded_and_its_dependents_skipped(
    xs_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = xs_run
    xs = bench.SCALES["XS"]
    source = bench.layout_for(work, xs, bench.DEFAULT_SEED)
    target = bench.layout_for(tmp_path, xs, bench.DEFAULT_SEED)
    shutil.copytree(source.raw, target.raw)  # reuse the generated data, not the runs
    shutil.copy(source.marker, target.marker)
    real_floor = bench.run_floor
    monkeypatch.setattr(  # the floors unguarded: only the backfill is to fail
        harness,
        "run_floor",
        lambda layout, files, tag, limits, name="floor": real_floor(layout, files, tag, name=name),
    )
    result = bench.run_bench(
        xs,
        tmp_path,
        repeats=1,
        echo=lambda _: None,
        limits=bench.Limits(timeout_s=0.01),
        skip=("peer", "window"),
    )
    backfill = result["scenarios"]["backfill"]
    assert "timeout" in backfill["failed"]
    assert backfill["runs"][0]["killed"] == "timeout"
    assert "wall_s" not in backfill  # no medians from a failed scenario
    assert "backfill" in result["scenarios"]["nightly"]["skipped"]
    assert "backfill" in result["scenarios"]["ray"]["skipped"]
    assert result["skipped"]["peer"] == result["skipped"]["window"] == "--skip"
    assert result["nightly_vs_scratch"]["identical"] is None
    table = bench.format_table(result)
    assert "backfill  FAILED" in table and "nightly   skipped" in table
    failed_m = {t["id"]: t["passed"] for t in bench.evaluate_targets("M", result)}
    assert failed_m["m_backfill_wall"] is False
    assert failed_m["m_nightly_wall"] is None
    assert failed_m["m_window60_ratio"] is None


def test_copy_output_links_published_partitions_and_copies_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "source"
    partition = source / "shop_scores" / "dt=2026-01-01"
    partition.mkdir(parents=True)
    (partition / "part-0.parquet").write_bytes(b"published")
    (source / "manifests").mkdir()
    (source / "manifests" / "dt=2026-01-01.json").write_text("{}")
    (source / "state").mkdir()
    (source / "state" / "window.db").write_bytes(b"mutable")
    target = tmp_path / "target"
    bench.copy_output(source, target)

    def inode(path: Path) -> int:
        return path.stat().st_ino

    linked = target / "shop_scores" / "dt=2026-01-01" / "part-0.parquet"
    assert inode(linked) == inode(partition / "part-0.parquet")
    copied = target / "state" / "window.db"
    assert copied.read_bytes() == b"mutable" and inode(copied) != inode(source / "state/window.db")
    assert (target / "manifests" / "dt=2026-01-01.json").read_text() == "{}"


def test_a_scale_the_disk_cannot_hold_is_refused_before_anything_is_generated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(data, "free_disk_bytes", lambda path: 10 * 2**30)
    argv = ["expscore", "bench", "--scale", "M", "--work", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    layout = bench.layout_for(tmp_path, bench.SCALES["M"], bench.DEFAULT_SEED)
    need = bench.disk_need(bench.SCALES["M"], layout, 61, (30, 60)).needed_bytes
    assert need > 100 * 2**30  # 61 days of logs and the 60-day window's runs
    assert f"scale M needs about {need / 2**30:.0f} GiB" in error and "10 GiB free" in error
    assert "--no-disk-check" in error
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing created


def test_without_the_disk_check_the_harness_starts_anyway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Started(Exception):
        pass

    def generate(*args: object) -> None:
        raise Started

    monkeypatch.setattr(data, "free_disk_bytes", lambda path: 0)
    monkeypatch.setattr(harness, "ensure_data", generate)
    with pytest.raises(bench.BenchError):
        bench.run_bench(bench.SCALES["M"], tmp_path, repeats=1, echo=lambda _: None)
    with pytest.raises(Started):
        bench.run_bench(
            bench.SCALES["M"], tmp_path, repeats=1, echo=lambda _: None, disk_check=False
        )


def test_the_disk_need_grows_with_the_scale_and_counts_what_is_already_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(data, "free_disk_bytes", lambda path: 0)
    m, l_ = (bench.SCALES[name] for name in ("M", "L"))
    need_m = bench.disk_need(m, bench.layout_for(tmp_path, m, 7))
    need_l = bench.disk_need(l_, bench.layout_for(tmp_path, l_, 7))
    assert need_l.needed_bytes == pytest.approx(10 * need_m.needed_bytes, rel=1e-6)
    assert need_m.present_bytes == 0 and not need_m.fits
    layout = bench.layout_for(tmp_path, m, 7)
    published = layout.out("backfill") / "part.parquet"
    published.parent.mkdir(parents=True)
    published.write_bytes(b"x" * 1000)
    linked = layout.out("nightly") / "part.parquet"
    linked.parent.mkdir(parents=True)
    os.link(published, linked)
    (layout.root / "generated.json").write_bytes(b"y" * 24)
    assert bench.disk_need(m, layout).present_bytes == 1024  # the hard link counted once


def test_the_floor_reads_orders_files_without_the_optional_region(tmp_path: Path) -> None:
    """13.1: an orders file may leave `ship_to_region` out; the floor hashes it where some file
    of the set carries it, and leaves it unnamed where none does (DuckDB could not bind it)."""
    from pipelines.devtools import generate as gen

    gen.generate(tmp_path, dt.date(2026, 3, 1), 1, 5, 50, 3, bad_rows=0)
    (day,) = (tmp_path / "orders").iterdir()
    frame = pl.read_parquet(day / "*.parquet").with_columns(ship_to_region=pl.lit("GD"))
    with_region, without = tmp_path / "with.parquet", tmp_path / "without.parquet"
    frame.write_parquet(with_region)
    frame.drop("ship_to_region").write_parquet(without)
    for files, named in (([without], False), ([with_region, without], True)):
        sql = bench.floor_queries({"orders": files})["orders"]
        assert ("ship_to_region" in sql) is named
        rows, _ = duckdb.sql(sql).fetchall()[0]
        assert rows == frame.height * len(files)


# --------------------------------------------------------------------------------------------
# the harness's edges, without running children


def test_why_a_child_failed_is_said_in_one_line(tmp_path: Path) -> None:
    """The last three lines of its log with its exit code; the signal that killed it, with the
    likely OOM killer for a SIGKILL the harness did not send."""
    log = tmp_path / "generate.log"
    log.write_text("starting\nday 1\nTraceback (most recent call last):\nOSError: disk full\n")
    failed = bench.Measurement(
        wall_s=2.0, cpu_s=1.0, peak_rss_bytes=3 * bench.GIB // 2, exit_code=1
    )
    text = (
        f"exit code 1 (log {log}): day 1 | Traceback (most recent call last): | OSError: disk full"
    )
    assert bench.failure_text(failed, log) == text
    with pytest.raises(bench.BenchError) as refused:
        children._require_success("generate", failed, log)
    assert str(refused.value) == f"bench: generate failed: {text}"
    killed = bench.Measurement(
        wall_s=2.0, cpu_s=1.0, peak_rss_bytes=3 * bench.GIB // 2, exit_code=-9
    )
    assert bench.failure_text(killed, log) == (
        f"killed by SIGKILL (most likely the kernel's OOM killer) at 1.5 GiB (log {log})"
    )
    killed.exit_code = -15
    assert bench.failure_text(killed, log) == f"killed by SIGTERM at 1.5 GiB (log {log})"
    done = bench.Measurement(wall_s=2.0, cpu_s=1.0, peak_rss_bytes=1, exit_code=0)
    assert children._require_success("generate", done, log) is None


@pytest.mark.parametrize("recorded", ["another seed", "fewer days"])
def test_data_of_other_parameters_is_generated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: str
) -> None:
    """A generation is reused only with the same parameters and at least the days asked for;
    otherwise the old data goes and the generator runs with the parameters asked for."""
    xs = bench.SCALES["XS"]
    layout = bench.Layout(tmp_path / "XS")
    old = bench.generation_params(xs, 8 if recorded == "another seed" else 7, days=2)
    (layout.raw / "orders").mkdir(parents=True)
    (layout.raw / "orders" / "stale.parquet").write_bytes(b"old")
    layout.marker.write_text(json.dumps({"params": old}), "utf-8")
    commands = []

    def generator(command, log, env=None, limits=None):
        commands.append(command)
        partial = Path(command[command.index("--out") + 1])
        (partial / "orders").mkdir(parents=True)
        (partial / "orders" / "new.parquet").write_bytes(b"new")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("wrote: orders 3 rows\n", "utf-8")
        return bench.Measurement(wall_s=1.0, cpu_s=1.0, peak_rss_bytes=1, exit_code=0)

    monkeypatch.setattr(data, "measure", generator)
    generated = bench.ensure_data(layout, xs, 7, echo=lambda _: None, days=3)
    assert generated["reused"] is False
    assert generated["params"] == bench.generation_params(xs, 7, days=3)
    [command] = commands
    assert command[-5:] == ["--start=2026-01-01", "--days=3", "--shops=30", "--orders-per-day=300",
                            "--seed=7"]  # fmt: skip
    assert [p.name for p in (layout.raw / "orders").iterdir()] == ["new.parquet"]
    assert json.loads(layout.marker.read_text("utf-8"))["params"] == generated["params"]
    assert bench.ensure_data(layout, xs, 7, echo=lambda _: None, days=3)["reused"] is True


def test_skipping_the_peer_leaves_its_spill_out_of_the_disk_need(tmp_path: Path) -> None:
    m = bench.SCALES["M"]
    layout = bench.layout_for(tmp_path, m, 7)
    per_day, window = m.orders_per_day, m.window_days
    raw = bench.RAW_BYTES_PER_ORDER * per_day * 31
    runs = bench.RUNS_PEAK_BYTES_PER_ORDER * per_day * window
    peer = bench.RAW_BYTES_PER_ORDER * per_day * window
    need = bench.disk_need(m, layout, 31, (), frozenset({"ray"})).needed_bytes
    assert need == int(bench.DISK_MARGIN * (raw + runs + peer))
    need = bench.disk_need(m, layout, 31, (), frozenset({"ray", "peer"})).needed_bytes
    assert need == int(bench.DISK_MARGIN * (raw + runs))


def test_the_state_size_is_per_table_without_the_exchange(tmp_path: Path) -> None:
    assert bench.state_bytes(tmp_path) is None  # an output without a state
    state = tmp_path / ".state"
    for relative, size in (
        ("data/v2/orders/shard-0.parquet", 100),
        ("data/v2/orders/shard-1.parquet", 50),
        ("data/v2/refunds/shard-0.parquet", 20),
        ("meta.json", 5),
        ("exchange/run-1/part.parquet", 999),  # a run's exchange, empty between runs
    ):
        (state / relative).parent.mkdir(parents=True, exist_ok=True)
        (state / relative).write_bytes(b"x" * size)
    assert bench.state_bytes(tmp_path) == {
        "bytes": 175,
        "by_table": {"meta.json": 5, "orders": 150, "refunds": 20},
    }


def test_stage_times_come_from_the_manifests_of_the_dates(tmp_path: Path) -> None:
    """A date without a manifest was not published: an error, or (how far a failed backfill
    got) left out."""
    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    manifest = {"status": "published", "timings_seconds": {"state": 1.5, "score": 2}}
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / f"dt={d1}.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(bench.BenchError) as refused:
        bench.manifest_stages(tmp_path, [d1, d2])
    path = tmp_path / "manifests" / f"dt={d2}.json"
    assert str(refused.value) == f"bench: no manifest {path}: the run did not publish {d2}"
    totals, per_day = bench.manifest_stages(tmp_path, [d1, d2], strict=False)
    assert totals == {"state": 1.5, "score": 2.0}
    assert per_day == [
        {"date": "2026-01-01", "status": "published", "state": 1.5, "score": 2.0, "execution": None}
    ]


def test_from_scratch_is_seeded_with_the_previous_day_s_tables_only(tmp_path: Path) -> None:
    """What D-1 published and nothing else; a table D-1 lacks stays absent, and without D-1's
    manifest the seed has none either (so D-1 is not a published date there)."""
    source, target = tmp_path / "source", tmp_path / "target"
    previous = dt.date(2026, 1, 4)
    for relative in (
        "shop_scores/dt=2026-01-04/part-0.parquet",
        "shop_scores/dt=2026-01-03/part-0.parquet",
        "shop_labels/dt=2026-01-04/part-0.parquet",
        ".state/data/orders.parquet",
    ):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(b"x")
    (target / "stale").mkdir(parents=True)
    bench.seed_from_scratch(source, target, previous)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "shop_labels/dt=2026-01-04/part-0.parquet",
        "shop_scores/dt=2026-01-04/part-0.parquet",
    ]


def test_a_table_the_peer_did_not_write_is_not_compared(xs_run, tmp_path: Path) -> None:
    _, result = xs_run
    day = dt.date.fromisoformat(result["window"]["nightly_date"])
    runs = Path(result["work"]) / "runs"
    peer = tmp_path / "peer"
    peer.mkdir()
    for table in bench.PEER_KEYS:
        if table != "item_scores":
            shutil.copy(runs / "peer" / f"{table}.parquet", peer / f"{table}.parquet")
    agreement = bench.compare_peer(peer, runs / "nightly", day)
    assert agreement["tables"]["item_scores"] == {"compared": False}
    assert agreement["pxi_agree_share"] is None and agreement["pxi_max_abs_diff"] is None
    assert agreement["all_agree"] is False  # what was not compared does not agree
    assert agreement["score_agree_share"] == 1.0
    assert all(agreement["tables"][t]["compared"] for t in bench.PEER_KEYS if t != "item_scores")


def test_cpus_busy_is_unknown_without_two_readings_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """No /proc/stat (not Linux), or no CPU time passed between the two readings."""
    monkeypatch.setattr(machine, "_cpu_jiffies", lambda: None)
    assert bench.cpus_busy(0.0) is None
    monkeypatch.setattr(machine, "_cpu_jiffies", lambda: (500, 1000))
    assert bench.cpus_busy(0.0) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"repeats": 0}, "bench: --repeats must be at least 1 and --backfill-repeats at least 0"),
        ({"backfill_repeats": -1}, "bench: --repeats must be at least 1 and --backfill-repeats "
         "at least 0"),
        ({"skip": ["ray", "nope"]}, "bench: --skip nope: not a scenario; use backfill, nightly, "
         "scratch, ray, peer, window"),
        ({"window_days": [30, 30]}, "bench: --window-days needs at least two different windows "
         "of 1+ days"),
        ({"window_days": [0, 30]}, "bench: --window-days needs at least two different windows "
         "of 1+ days"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_runs(
    tmp_path: Path, arguments: dict, message: str
) -> None:
    with pytest.raises(InputError) as refused:
        bench.run_bench(bench.SCALES["XS"], tmp_path, echo=lambda _: None, **arguments)
    assert str(refused.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--skip", "ray,nope"], "nope: use any of backfill, nightly, scratch, ray, peer, window"),
        (["--window-days", "30"], "at least two different window lengths of 1 to 90 days"),
        (["--window-days", "30,91"], "at least two different window lengths of 1 to 90 days"),
    ],
)
def test_bad_options_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path,
    option: list[str], message: str,
) -> None:  # fmt: skip
    argv = ["expscore", "bench", "--scale", "XS", "--work", str(tmp_path), *option]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def no_children(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """run_bench with its floors recorded instead of run, no data generated, a quiet machine
    of unknown memory (and no second's sampling of its CPUs): the names of the floors run."""
    floors: list[str] = []

    def floor(layout, files, tag, limits=None, name="floor"):
        floors.append(name)
        return bench.Measurement(
            wall_s=0.5, cpu_s=0.4, peak_rss_bytes=50 * 2**20, exit_code=0, stages={"query": 0.25}
        )

    quiet = {"load_average": [0.1, 0.1, 0.1], "memory_available_bytes": 20 * bench.GIB}
    for module in (harness, windows):
        monkeypatch.setattr(module, "run_floor", floor)
    for module in (harness, machine):
        monkeypatch.setattr(module, "machine_load", lambda: {**quiet, "cpus_busy": 0.05})
    monkeypatch.setattr(machine, "machine_memory", lambda: None)
    monkeypatch.setattr(harness, "ensure_data", lambda *args: {"params": {"days": 3}})
    return floors


def test_without_the_backfill_what_needs_its_output_is_skipped(
    no_children: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--skip backfill`: the nightly, from-scratch and Ray runs start from its output, so they
    are skipped saying so (Ray, here not installed, says that first); the floors still run."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    assert harness._ray_missing() == (
        "Ray is not installed (pip install 'expscore[ray]', or the dev extras)"
    )
    result = bench.run_bench(
        bench.SCALES["XS"], tmp_path, repeats=1, echo=lambda _: None,
        skip=("backfill", "peer", "window"),
    )  # fmt: skip
    needs = "needs the backfill's output, and the backfill was skipped"
    assert result["skipped"] == {
        "backfill": "--skip",
        "peer": "--skip",
        "window": "--skip",
        "ray": harness._ray_missing(),
        "nightly": needs,
        "scratch": needs,
    }
    assert no_children == ["floor", "floor_day"]
    assert result["scenarios"]["nightly"]["skipped"] == needs
    assert not (
        bench.layout_for(tmp_path, bench.SCALES["XS"], bench.DEFAULT_SEED).root / "runs"
    ).exists()
    lines = bench.format_table(result).splitlines()
    assert lines[0].endswith(" CPUs, -")  # the machine's memory, which it did not say
    assert f"scratch   skipped: {needs}" in lines
    assert "nightly vs from scratch: not compared (a run failed or was skipped)" in lines
    assert not any(line.startswith("WARNING: the machine was busy") for line in lines)


def test_reusing_a_backfill_needs_an_earlier_one(no_children: list[str], tmp_path: Path) -> None:
    xs = bench.SCALES["XS"]
    with pytest.raises(InputError) as refused:
        bench.run_bench(xs, tmp_path, repeats=1, backfill_repeats=0, echo=lambda _: None)
    backfill = bench.layout_for(tmp_path, xs, bench.DEFAULT_SEED).out("backfill")
    assert (
        str(refused.value) == f"bench: --backfill-repeats 0 needs an earlier backfill in {backfill}"
    )
    assert no_children == []  # refused before the first floor
    last = bench.START + dt.timedelta(days=xs.window_days - 1)  # the backfill's last date
    (backfill / "manifests").mkdir(parents=True)
    (backfill / "manifests" / f"dt={last}.json").write_text("{}", "utf-8")
    result = bench.run_bench(
        xs, tmp_path, repeats=1, backfill_repeats=0, echo=lambda _: None,
        skip=("nightly", "scratch", "ray", "peer", "window"),
    )  # fmt: skip
    reused = "--backfill-repeats 0: the output of an earlier one is reused"
    assert result["skipped"]["backfill"] == result["scenarios"]["backfill"]["skipped"] == reused
    assert no_children == ["floor", "floor_day"]


def test_a_scale_of_the_shipped_window_uses_the_shipped_rules(tmp_path: Path) -> None:
    layout = bench.Layout(tmp_path / "M")
    assert bench.rules_file(layout, bench.DEFAULT_WINDOW_DAYS) is None
    assert list(tmp_path.iterdir()) == []  # nothing written
    copy = bench.rules_file(layout, 2)
    assert copy == layout.rules_for(2)
    shipped = DEFAULT_RULES_PATH.read_text("utf-8")
    assert tomllib.loads(copy.read_text("utf-8")) == {**tomllib.loads(shipped), "window_days": 2}
