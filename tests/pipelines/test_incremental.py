"""The window state: an incremental run gives exactly the tables of a from-scratch run (issue 3).

A from-scratch run here is `run_day(..., publish=False)`: an empty in-memory state synced to the
window, which reads the same D-1 tables from `--out` as the incremental run beside it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.load import column_list
from pipelines.run import StateOptions, load_rules, run_day
from pipelines.schemas import LOGS
from pipelines.state import current_columns, current_rows_sql, state_path
from scoring.rules import parse_rules
from tests.builders import DEFAULT_RULES_PATH, default_rules_dict, frame, indicator_row, ts
from tests.compare import run_differences as differences
from tests.marketplace import (
    RUN_DATE,
    VERSION_COLUMN,
    business_day,
    marketplaces,
    write_marketplace,
)

SAMPLE_RAW = Path(__file__).resolve().parents[2] / "data_samples" / "raw"
EXAMPLES = int(os.environ.get("EXPSCORE_EXAMPLES", "10"))


def small_rules(window_days: int):
    rules = {**default_rules_dict(), "min_orders": 3, "min_item_orders": 2}
    rules["window_days"] = window_days
    return parse_rules(rules, f"small-w{window_days}")


def scratch_then_incremental(raw: Path, out: Path, rules, day: dt.date, **state: Any):
    """The from-scratch tables of `day`, then the incremental run's (which publishes)."""
    scratch = run_day(raw, out, rules, day, publish=False)
    incremental = run_day(raw, out, rules, day, force=True, state=StateOptions(**state))
    return scratch, incremental


def current_state_drift(out: Path) -> dict[str, int]:
    """Per log, the stored current rows that differ from the current state of its stored rows.

    A night moves `current_<log>` from its rows before and the rows arriving and leaving
    (`_move_current`), and keeps each key's number of rows; this recomputes both from
    `versions_<log>` and counts the rows found on one side only.
    """
    drift = {}
    with duckdb.connect(str(state_path(out)), read_only=True) as con:
        for log in LOGS:
            columns = column_list(current_columns(log))
            stored = f"SELECT {columns} FROM current_{log}"
            recomputed = current_rows_sql(log, f"versions_{log}")
            differing = con.sql(
                f"SELECT count(*) FROM (({stored} EXCEPT ALL {recomputed}) "
                f"UNION ALL ({recomputed} EXCEPT ALL {stored}))"
            ).fetchall()[0][0]
            if differing:
                drift[log] = differing
    return drift


def write_rows(raw: Path, log: str, day: dt.date, rows: list[dict], name: str) -> None:
    folder = raw / log / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    frame(log, rows).write_parquet(folder / f"{name}.parquet")


def by_partition(log: str, rows: list[dict], lags: list[int]) -> dict[dt.date, list[dict]]:
    """Rows grouped by the partition they arrive in: their own business day plus a lag."""
    grouped: dict[dt.date, list[dict]] = {}
    for row, lag in zip(rows, lags, strict=True):
        day = business_day(row[VERSION_COLUMN[log]]) + dt.timedelta(days=lag)
        grouped.setdefault(day, []).append(row)
    return grouped


@st.composite
def arrivals(draw: st.DrawFn) -> dict[str, Any]:
    """A marketplace, and how its rows arrive over a sequence of nightly runs.

    - `late`: rows held back from the first write; before run `step` each arrives in its own
      business day's partition or up to 5 days later, as an extra file (a late file in a
      partition the state already holds, or a partition that did not exist yet);
    - `duplicates`: copies of rows written up to 5 days after their own partition;
    - `dates`: run dates, mostly forward one day, sometimes a jump, a repeat or a step back.
    """
    logs = draw(marketplaces(max_orders=25))
    steps = draw(st.integers(2, 5))
    late: dict[str, list[tuple[int, int, int]]] = {}  # log -> (row index, step, lag)
    duplicates: dict[str, list[tuple[int, int]]] = {}  # log -> (row index, lag)
    for log, rows in logs.items():
        indexes = st.integers(0, max(0, len(rows) - 1))
        if rows:
            late[log] = draw(
                st.lists(st.tuples(indexes, st.integers(0, steps - 1), st.integers(0, 5)),
                         max_size=4, unique_by=lambda t: t[0]),
            )  # fmt: skip
            duplicates[log] = draw(st.lists(st.tuples(indexes, st.integers(0, 5)), max_size=3))
    day = RUN_DATE - dt.timedelta(days=draw(st.integers(4, 12)))
    dates = []
    for _ in range(steps):
        dates.append(day)
        day += dt.timedelta(days=draw(st.sampled_from([1, 1, 1, 2, 7, 0, -1, -3])))
    window_days = draw(st.sampled_from([2, 3, 7, 30]))
    return {"logs": logs, "late": late, "duplicates": duplicates, "dates": dates,
            "window_days": window_days}  # fmt: skip


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(arrivals())
def test_incremental_runs_equal_from_scratch_runs(case: dict[str, Any]) -> None:
    """Over a random sequence of run dates, with late and duplicate rows arriving in between."""
    logs, rules = case["logs"], small_rules(case["window_days"])
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "out"
        held = {log: {i for i, _, _ in case["late"].get(log, [])} for log in logs}
        first = {
            log: [r for i, r in enumerate(rows) if i not in held[log]] for log, rows in logs.items()
        }
        write_marketplace(raw, first)
        for log, copies in case["duplicates"].items():
            rows = [logs[log][i] for i, _ in copies]
            for day, group in by_partition(log, rows, [lag for _, lag in copies]).items():
                write_rows(raw, log, day, group, "duplicates")
        for step, day in enumerate(case["dates"]):
            for log, arrivals_ in case["late"].items():
                now = [(i, lag) for i, s, lag in arrivals_ if s == step]
                rows = [logs[log][i] for i, _ in now]
                for part, group in by_partition(log, rows, [lag for _, lag in now]).items():
                    write_rows(raw, log, part, group, f"late-{step}")
            scratch, incremental = scratch_then_incremental(raw, out, rules, day)
            problems = differences(incremental, scratch)
            assert not problems, f"run {step} for {day}:\n" + "\n".join(problems)
            assert not current_state_drift(out), f"run {step} for {day}"


def test_events_that_left_the_window_stop_counting_for_an_order_paid_after_them(tmp_path) -> None:
    """An event from before the window that names an order paid in it (a bad clock, a reused
    id): the spec counts it while its partition is read and not once the partition has left.
    The nightly merge leaves such a tracking row stale and recomputes it (`_settle_tracking`).
    """
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    early_pickup = {"event_type": "picked_up", "event_at": ts(2026, 3, 1, 2)}
    write_rows(raw, "logistics", days[0], [early_pickup], "early")
    write_rows(raw, "orders", days[1], [{"paid_at": ts(2026, 3, 2, 2)}], "orders")
    write_rows(raw, "logistics", days[1], [{"event_id": 2, "event_at": ts(2026, 3, 2, 4)}], "trail")
    write_rows(raw, "logistics", days[2], [{"event_id": 3, "event_at": ts(2026, 3, 3, 4)}], "trail")
    runs = [scratch_then_incremental(raw, out, rules, day) for day in days[1:]]
    for scratch, incremental in runs:
        assert not differences(incremental, scratch)
    picked_up = [
        indicator_row(incremental.tables, 1, "track_anomaly_rate")["denominator"]
        for _, incremental in runs
    ]
    assert picked_up == [1, 0]  # the pickup of 03-01 counts on 03-02 only
    assert runs[1][1].manifest["state"]["partitions_loaded"]["logistics"] == ["2026-03-03"]


def test_a_step_back_drops_the_events_of_the_partition_it_leaves(tmp_path) -> None:
    """Back from 03-03 to 03-02 the 03-03 partition leaves: its exception no longer counts.

    One partition loaded and one evicted, as on a nightly run; the evicted events are inside
    the new window's days, so the merge recomputes their orders instead of leaving them stale.
    """
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    write_rows(raw, "orders", days[1], [{"paid_at": ts(2026, 3, 2, 1)}], "orders")
    write_rows(
        raw,
        "logistics",
        days[0],
        [{"event_id": 3, "order_id": 2, "event_at": ts(2026, 3, 1, 4)}],
        "other",
    )
    pickup = {"event_type": "picked_up", "event_at": ts(2026, 3, 2, 2)}
    write_rows(raw, "logistics", days[1], [pickup], "pickup")
    exception = {"event_id": 2, "event_type": "exception", "event_at": ts(2026, 3, 3, 2)}
    write_rows(raw, "logistics", days[2], [exception], "exception")
    runs = [scratch_then_incremental(raw, out, rules, day) for day in (days[2], days[1])]
    for scratch, incremental in runs:
        assert not differences(incremental, scratch)
    anomalies = [
        indicator_row(incremental.tables, 1, "track_anomaly_rate")["numerator"]
        for _, incremental in runs
    ]
    assert anomalies == [1, 0]
    assert runs[1][1].manifest["state"]["partitions_evicted"]["logistics"] == ["2026-03-03"]


def test_a_key_whose_current_row_leaves_falls_back_to_its_rows_that_stay(tmp_path) -> None:
    """The current row of a key leaves the window while another of its rows stays.

    An order version that arrived late (an older `updated_at` in a later partition) becomes
    current when the newer version's partition leaves; for an event, the copy of the next
    partition does. The night looks these keys up among their stored rows.
    """
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    paid = {"paid_at": ts(2026, 3, 1, 1), "promised_ship_at": ts(2026, 3, 4)}
    newer = {**paid, "updated_at": ts(2026, 3, 1, 5), "cancelled_at": ts(2026, 3, 1, 5)}
    write_rows(raw, "orders", days[0], [newer], "newer")
    write_rows(raw, "orders", days[1], [{**paid, "updated_at": ts(2026, 3, 1, 3)}], "late")
    pickup = {"event_type": "picked_up", "event_at": ts(2026, 3, 1, 4)}
    write_rows(raw, "logistics", days[0], [pickup], "first-copy")
    write_rows(raw, "logistics", days[1], [pickup], "second-copy")
    runs = [scratch_then_incremental(raw, out, rules, day) for day in days[1:]]
    for scratch, incremental in runs:
        assert not differences(incremental, scratch)
    assert not current_state_drift(out)
    with duckdb.connect(str(state_path(out)), read_only=True) as con:
        order = con.sql("SELECT cancelled_at, dt, copies FROM current_orders").fetchall()
        event = con.sql("SELECT dt, copies FROM current_logistics").fetchall()
    assert order == [(None, days[1], 1)]
    assert event == [(days[1], 1)]
    assert runs[1][1].manifest["state"]["partitions_evicted"]["orders"] == ["2026-03-01"]


# --------------------------------------------------------------------------------------------
# the sample data


RULES = load_rules(DEFAULT_RULES_PATH)
D = dt.date(2026, 10, 10)


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sample's 10-09 from an empty state, then 10-10 and 10-05 on top of it."""
    out = tmp_path_factory.mktemp("nightly") / "out"
    first = run_day(SAMPLE_RAW, out, RULES, D - dt.timedelta(days=1), force=True)
    scratch, nightly = scratch_then_incremental(SAMPLE_RAW, out, RULES, D)
    back_scratch, back = scratch_then_incremental(SAMPLE_RAW, out, RULES, dt.date(2026, 10, 5))
    return {"out": out, "first": first, "scratch": scratch, "nightly": nightly,
            "back_scratch": back_scratch, "back": back}  # fmt: skip


def test_first_run_loads_the_whole_window(nightly) -> None:
    state = nightly["first"].manifest["state"]
    assert state["path"] == str(state_path(nightly["out"]))
    assert all(len(days) == 30 for days in state["partitions_loaded"].values())
    assert all(kept == 0 for kept in state["partitions_kept"].values())


def test_nightly_run_reads_only_the_new_partition(nightly) -> None:
    state = nightly["nightly"].manifest["state"]
    assert state["partitions_loaded"] == {log: ["2026-10-10"] for log in state["partitions_loaded"]}
    assert state["partitions_evicted"] == {log: ["2026-09-10"] for log in state["partitions_kept"]}
    assert set(state["partitions_kept"].values()) == {29}
    # only the orders that the new and the evicted day's events name (a day's events are about
    # the orders of the last ~5 days), not every tracked order of the window
    everything = nightly["first"].manifest["state"]["orders_recomputed"]["order_tracking"]
    assert 0 < state["orders_recomputed"]["order_tracking"] < everything / 3
    assert not differences(nightly["nightly"], nightly["scratch"])


def test_nightly_runs_keep_the_current_state_of_the_stored_rows(nightly) -> None:
    assert not current_state_drift(nightly["out"])


def test_a_run_for_an_older_date_equals_its_from_scratch_run(nightly) -> None:
    state = nightly["back"].manifest["state"]
    assert state["partitions_loaded"]["orders"] == [f"2026-09-{d:02}" for d in range(6, 11)]
    assert state["partitions_evicted"]["orders"] == [f"2026-10-{d:02}" for d in range(6, 11)]
    assert not differences(nightly["back"], nightly["back_scratch"])


def test_state_for_another_window_is_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_day(SAMPLE_RAW, out, RULES, D, force=True)
    data = default_rules_dict()
    data["window_days"] = 28
    shorter = parse_rules(data, "w28")
    scratch, again = scratch_then_incremental(SAMPLE_RAW, out, shorter, D)
    assert "window_days" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, scratch)


def test_rebuild_gives_the_same_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(SAMPLE_RAW, out, RULES, D, force=True)
    rebuilt = run_day(SAMPLE_RAW, out, RULES, D, force=True, state=StateOptions(rebuild=True))
    assert rebuilt.manifest["state"]["rebuilt_because"] == "--rebuild"
    assert set(rebuilt.manifest["state"]["partitions_kept"].values()) == {0}
    assert not differences(rebuilt, first)


def test_an_unreadable_state_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(SAMPLE_RAW, out, RULES, D, force=True)
    path = state_path(out)
    path.write_bytes(b"not a database" * 1000)
    again = run_day(SAMPLE_RAW, out, RULES, D, force=True)
    assert "could not be opened" in again.manifest["state"]["rebuilt_because"]
    assert path.with_name(path.name + ".unreadable").exists()
    assert not differences(again, first)


def test_a_bad_new_file_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(SAMPLE_RAW, raw)
    run_day(raw, out, RULES, D - dt.timedelta(days=1), force=True)
    bad = raw / "orders" / f"dt={D}" / "zz-bad.parquet"
    bad.write_bytes(b"PAR1 not parquet PAR1")
    with pytest.raises(InputError, match=r"zz-bad\.parquet"):
        run_day(raw, out, RULES, D, force=True)
    with duckdb.connect(str(state_path(out)), read_only=True) as con:
        newest = con.sql("SELECT max(dt) FROM partitions").fetchall()[0][0]
        versions = con.sql("SELECT max(dt) FROM versions_orders").fetchall()[0][0]
    assert newest == versions == D - dt.timedelta(days=1)
    bad.unlink()
    scratch, fixed = scratch_then_incremental(raw, out, RULES, D)
    assert not differences(fixed, scratch)


def test_a_changed_old_partition_is_reloaded(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(SAMPLE_RAW, raw)
    run_day(raw, out, RULES, D, force=True)
    # a restated partition: one of its files is removed upstream
    partition = raw / "refunds" / "dt=2026-10-01"
    sorted(partition.glob("*.parquet"))[0].unlink()
    scratch, again = scratch_then_incremental(raw, out, RULES, D)
    state = again.manifest["state"]
    assert state["partitions_evicted"]["refunds"] == ["2026-10-01"]
    assert state["partitions_loaded"]["refunds"] == ["2026-10-01"]
    assert not differences(again, scratch)


@pytest.mark.parametrize("shards", [1, 16])
def test_shard_count_does_not_change_the_tables(nightly, shards: int) -> None:
    result = run_day(
        SAMPLE_RAW, nightly["out"], RULES, D, publish=False, state=StateOptions(shards=shards)
    )
    assert result.manifest["execution"]["shards"] == shards
    assert not differences(result, nightly["scratch"])


def test_per_order_rows_computed_in_many_chunks_are_the_same(nightly, monkeypatch) -> None:
    monkeypatch.setattr("pipelines.state.DERIVED_CHUNK_ROWS", 2_000)
    result = run_day(SAMPLE_RAW, nightly["out"], RULES, D, publish=False)
    assert not differences(result, nightly["scratch"])


def test_events_merged_in_many_parts_give_the_same_tables(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    run_day(SAMPLE_RAW, out, RULES, D - dt.timedelta(days=1), force=True)
    monkeypatch.setattr("pipelines.state.MERGE_CHUNK_EVENTS", 500)
    scratch, nightly = scratch_then_incremental(SAMPLE_RAW, out, RULES, D)
    assert nightly.manifest["state"]["orders_merged"]["order_tracking"] > 1_000
    assert not differences(nightly, scratch)


def test_memory_limit_is_small_for_a_nightly_sync_unless_set(monkeypatch) -> None:
    from pipelines.state import duckdb_memory_limit

    monkeypatch.delenv("EXPSCORE_DUCKDB_MEMORY", raising=False)
    assert duckdb_memory_limit(1) == duckdb_memory_limit(2) == "2GB"
    assert duckdb_memory_limit(30) == duckdb_memory_limit(None) == "6GB"
    monkeypatch.setenv("EXPSCORE_DUCKDB_MEMORY", "12GB")
    assert duckdb_memory_limit(1) == duckdb_memory_limit(30) == "12GB"


def test_running_out_of_memory_names_the_limit_and_keeps_the_state(tmp_path, monkeypatch) -> None:
    from pipelines.errors import ExpscoreError

    out = tmp_path / "out"
    monkeypatch.setenv("EXPSCORE_DUCKDB_MEMORY", "20MB")
    with pytest.raises(ExpscoreError, match="EXPSCORE_DUCKDB_MEMORY"):
        run_day(SAMPLE_RAW, out, RULES, D, force=True)
    with duckdb.connect(str(state_path(out)), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM partitions").fetchall()[0][0] == 0
    assert not (out / "shop_scores").exists()
