"""The benchmark harness end to end at the hidden XS scale (no timing assertions: CI machines vary).

XS generates 3 days of a tiny marketplace and scores them under a 2-day window, so the whole
harness (generation, floor, backfill, nightly, from-scratch, identity check, JSON, table) runs
in seconds through the real `expscore bench` command.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines import bench
from pipelines.cli import main


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


def test_json_reports_every_scenario_with_its_figures(xs_run) -> None:
    _, result = xs_run
    assert result["scale"]["name"] == "XS"
    assert result["scale"]["window_days"] == 2
    assert set(result["machine"]) >= {"cpu_count", "cpus_usable", "memory_bytes", "packages"}
    assert set(result["scenarios"]) == {"floor", "floor_day", "backfill", "nightly", "scratch"}
    rows = result["window"]["rows_total"]
    assert rows > 0 and set(result["window"]["rows"]) == {
        "orders",
        "refunds",
        "logistics",
        "cs_sessions",
    }
    for name, scenario in result["scenarios"].items():
        assert scenario["wall_s"] > 0, name
        assert scenario["cpu_s"] > 0, name
        assert scenario["peak_rss_bytes"] > 10 * 1024**2, name  # a Python process, not the harness
        assert scenario["rows_per_s"] > 0, name
        assert scenario["ratio_to_floor"] > 0, name
        assert len(scenario["runs"]) == 1, name
        assert all(r["exit_code"] == 0 for r in scenario["runs"]), name
    for name in ("backfill", "nightly", "scratch"):
        stages = result["scenarios"][name]["stages"]
        assert {"state", "score", "publish"} <= set(stages), name
        assert all(s["seconds"] >= 0 and "rows_per_s" in s for s in stages.values())
    assert len(result["scenarios"]["backfill"]["per_day_last_repeat"]) == 2
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
    assert set(comparison["tables"]) == set(bench.PUBLISHED_TABLES)
    assert comparison["speedup"] > 0
    assert result["targets"] == []  # the targets are for M and L only


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
    assert reused["reused"] is True
    table = bench.format_table(result)
    assert len(table.splitlines()) < 15
    for name in bench.SCENARIOS:
        assert any(line.startswith(name) for line in table.splitlines())


def test_targets_pass_and_fail_on_the_figures() -> None:
    def result(nightly_wall: float, identical: bool) -> dict:
        return {
            "scenarios": {
                "nightly": {"wall_s": nightly_wall, "peak_rss_bytes": 2 * bench.GIB},
                "backfill": {"wall_s": 200.0},
                "scratch": {"wall_s": 60.0},
            },
            "nightly_vs_scratch": {"speedup": 60.0 / nightly_wall, "identical": identical},
        }

    good = {t["id"]: t["passed"] for t in bench.evaluate_targets("M", result(10.0, True))}
    assert good == dict.fromkeys(
        [
            "m_nightly_wall",
            "m_nightly_rss",
            "m_backfill_wall",
            "m_nightly_speedup",
            "m_nightly_identical",
        ],
        True,
    )
    bad = {t["id"]: t["passed"] for t in bench.evaluate_targets("M", result(20.0, False))}
    assert bad["m_nightly_wall"] is False
    assert bad["m_nightly_speedup"] is False
    assert bad["m_nightly_identical"] is False
    assert bad["m_nightly_rss"] is True


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
    assert "S|M|L" in capsys.readouterr().err


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
        bench,
        "run_floor",
        lambda layout, files, tag, limits, name="floor": real_floor(layout, files, tag, name=name),
    )
    result = bench.run_bench(
        xs, tmp_path, repeats=1, echo=lambda _: None, limits=bench.Limits(timeout_s=0.01)
    )
    backfill = result["scenarios"]["backfill"]
    assert "timeout" in backfill["failed"]
    assert backfill["runs"][0]["killed"] == "timeout"
    assert "wall_s" not in backfill  # no medians from a failed scenario
    assert "backfill" in result["scenarios"]["nightly"]["skipped"]
    assert result["nightly_vs_scratch"]["identical"] is None
    table = bench.format_table(result)
    assert "backfill  FAILED" in table and "nightly   skipped" in table
    failed_m = {t["id"]: t["passed"] for t in bench.evaluate_targets("M", result)}
    assert failed_m["m_backfill_wall"] is False
    assert failed_m["m_nightly_wall"] is None


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
    monkeypatch.setattr(bench, "free_disk_bytes", lambda path: 10 * 2**30)
    argv = ["expscore", "bench", "--scale", "M", "--work", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "scale M needs about 56 GiB" in error and "10 GiB free" in error
    assert "--no-disk-check" in error
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing created


def test_without_the_disk_check_the_harness_starts_anyway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Started(Exception):
        pass

    def generate(*args: object) -> None:
        raise Started

    monkeypatch.setattr(bench, "free_disk_bytes", lambda path: 0)
    monkeypatch.setattr(bench, "ensure_data", generate)
    with pytest.raises(bench.BenchError):
        bench.run_bench(bench.SCALES["M"], tmp_path, repeats=1, echo=lambda _: None)
    with pytest.raises(Started):
        bench.run_bench(
            bench.SCALES["M"], tmp_path, repeats=1, echo=lambda _: None, disk_check=False
        )


def test_the_disk_need_grows_with_the_scale_and_counts_what_is_already_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "free_disk_bytes", lambda path: 0)
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
