"""The window state: an incremental run gives exactly the tables of a from-scratch run (issue 19).

A from-scratch run here is `run_day(..., publish=False)`: a state built from nothing in a
temporary folder, which reads the same D-1 tables from `--out` as the incremental run beside it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.layout import STATE_DIR
from pipelines.nightly.run import StateOptions, load_rules, run_day
from pipelines.state import current_state, window_facts
from pipelines.state.store import StateStore
from scoring.contract import LOGS
from scoring.daily import rules_window
from scoring.rules import parse_rules
from tests.builders import (
    DEFAULT_RULES_PATH,
    default_rules_dict,
    frame,
    indicator_row,
    small_raw,
    ts,
    window_is_empty,
)
from tests.compare import run_differences as differences
from tests.hypothesis_budget import examples
from tests.marketplace import (
    RUN_DATE,
    business_day,
    exemptions,
    marketplaces,
    write_marketplace,
)


def small_rules(window_days: int, exempt: list[dict] | None = None):
    rules = {**default_rules_dict(), "min_orders": 3, "min_item_orders": 2}
    rules["window_days"] = window_days
    rules["exemptions"] = exempt or []
    return parse_rules(rules, f"small-w{window_days}")


def scratch_then_incremental(raw: Path, out: Path, rules, day: dt.date, **state: Any):
    """The from-scratch tables of `day`, then the incremental run's (which publishes)."""
    scratch = run_day(raw, out, rules, day, publish=False)
    incremental = run_day(raw, out, rules, day, force=True, state=StateOptions(**state))
    return scratch, incremental


def sorted_rows(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    return frame.select(sorted(frame.columns)).sort(key, *sorted(set(frame.columns) - {key}))


def state_drift(raw: Path, out: Path, rules, day: dt.date) -> dict[str, int]:
    """Per log, the current rows of the kept state that a state built from scratch lacks.

    The tables can hide a wrong stored row (an abnormal order, an order with no due date yet);
    this compares every current row the two states hold, tracking facts included.
    """
    kept = current_state(str(out / STATE_DIR))
    with tempfile.TemporaryDirectory() as fresh:
        window_facts(raw, rules_window(rules, day), fresh, StateOptions())
        scratch = current_state(fresh)
    keys = {"orders": "order_id", "logistics": "event_id", "refunds": "refund_id",
            "cs_sessions": "session_id", "appeals": "appeal_id"}  # fmt: skip
    drift = {}
    for log, key in keys.items():
        a, b = sorted_rows(kept[log], key), sorted_rows(scratch[log], key)
        if not a.equals(b):
            drift[log] = a.join(b, on=a.columns, how="anti", nulls_equal=True).height + abs(
                a.height - b.height
            )
    return drift


def write_rows(raw: Path, log: str, day: dt.date, rows: list[dict], name: str) -> None:
    folder = raw / log / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    frame(log, rows).write_parquet(folder / f"{name}.parquet")


def by_partition(log: str, rows: list[dict], lags: list[int]) -> dict[dt.date, list[dict]]:
    """Rows grouped by the partition they arrive in: their own business day plus a lag."""
    grouped: dict[dt.date, list[dict]] = {}
    for row, lag in zip(rows, lags, strict=True):
        day = business_day(row[LOGS[log].version_column]) + dt.timedelta(days=lag)
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
            "window_days": window_days, "exemptions": draw(exemptions())}  # fmt: skip


@settings(
    max_examples=examples(10),  # about 2 s an example
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(arrivals())
def test_incremental_runs_equal_from_scratch_runs(case: dict[str, Any]) -> None:
    """Over a random sequence of run dates, with late and duplicate rows (appeals among them)
    arriving in between, and random exemptions in the rules."""
    logs, rules = case["logs"], small_rules(case["window_days"], case["exemptions"])
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
            if window_is_empty(raw, rules, day):  # both refuse a window with no partition
                for publish in (False, True):
                    with pytest.raises(InputError, match="no partition of any log"):
                        run_day(raw, out, rules, day, publish=publish, force=True)
                continue
            scratch = run_day(raw, out, rules, day, publish=False)
            incremental = run_day(raw, out, rules, day, force=True)
            problems = differences(incremental, scratch)
            assert not problems, f"run {step} for {day}:\n" + "\n".join(problems)
            assert not state_drift(raw, out, rules, day), f"run {step} for {day}"


def test_events_that_left_the_window_stop_counting_for_an_order_paid_after_them(tmp_path) -> None:
    """An event from before the window that names an order paid in it (a bad clock, a reused
    id): the spec counts it while its partition is read and not once the partition has left.
    The order's facts are recomputed from the events that stay.
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
    night = runs[1][1].manifest["state"]
    assert night["partitions_loaded"]["logistics"] == ["2026-03-03"]
    assert night["rebuilt_because"] is None
    assert night["night"]["orders_recomputed"] == 1
    assert not state_drift(raw, out, rules, days[2])


def test_a_step_back_rebuilds_and_drops_the_events_of_the_partition_it_leaves(tmp_path) -> None:
    """Back from 03-03 to 03-02 the 03-03 partition leaves: its exception no longer counts."""
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
    assert "after 2026-03-02" in runs[1][1].manifest["state"]["rebuilt_because"]


def test_a_key_whose_current_row_leaves_falls_back_to_its_rows_that_stay(tmp_path) -> None:
    """The current row of a key leaves the window while another of its rows stays.

    An order version that arrived late (an older `updated_at` in a later partition) would be
    current once the newer version's partition leaves, but an order whose current version is
    that old was paid before the window: it is in no population either way. For an event, the
    copy of the next partition becomes current, and the order is recomputed from it.
    """
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    paid = {"paid_at": ts(2026, 3, 1, 1), "promised_ship_at": ts(2026, 3, 4)}
    newer = {**paid, "updated_at": ts(2026, 3, 1, 5), "cancelled_at": ts(2026, 3, 1, 5)}
    write_rows(raw, "orders", days[0], [newer], "newer")
    write_rows(raw, "orders", days[1], [{**paid, "updated_at": ts(2026, 3, 1, 3)}], "late")
    write_rows(raw, "orders", days[1], [{"order_id": 2, "paid_at": ts(2026, 3, 2, 1)}], "o2")
    pickup = {"order_id": 2, "event_type": "picked_up", "event_at": ts(2026, 3, 2, 4)}
    write_rows(raw, "logistics", days[1], [pickup], "first-copy")
    write_rows(raw, "logistics", days[2], [pickup], "second-copy")
    runs = [scratch_then_incremental(raw, out, rules, day) for day in days[1:]]
    for scratch, incremental in runs:
        assert not differences(incremental, scratch)
    assert not state_drift(raw, out, rules, days[2])
    current = current_state(str(out / STATE_DIR))
    assert current["orders"]["order_id"].to_list() == [2]  # order 1 was paid before 03-02
    assert current["logistics"]["dt"].to_list() == [days[1]]  # the first copy counts
    assert runs[1][1].manifest["state"]["partitions_evicted"]["orders"] == ["2026-03-01"]


def test_a_refund_falling_back_to_a_version_of_another_order_moves_its_flags(tmp_path) -> None:
    """Refund 1's current version (order 1) leaves the window; its older version that stays
    names order 2 with a quality reason: order 2 now has a problem refund (found in review)."""
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    requested = ts(2026, 3, 1, 2)
    current = {"refund_id": 1, "order_id": 1, "requested_at": requested}
    write_rows(raw, "refunds", days[0], [{**current, "updated_at": ts(2026, 3, 1, 5)}], "cur")
    late = {**current, "order_id": 2, "reason": "quality", "updated_at": ts(2026, 3, 1, 3)}
    write_rows(raw, "refunds", days[1], [late], "late")
    cancelled = {"paid_at": ts(2026, 3, 2, 2), "cancelled_at": ts(2026, 3, 2, 3)}
    orders = [{**cancelled, "order_id": n, "updated_at": ts(2026, 3, 2, 3)} for n in (1, 2)]
    write_rows(raw, "orders", days[1], orders, "orders")
    for day in days[1:]:
        scratch, incremental = scratch_then_incremental(raw, out, rules, day)
        assert not differences(incremental, scratch), day
    assert incremental.tables["item_scores"]["problem_orders"].to_list() == [1]
    assert not state_drift(raw, out, rules, days[2])


def test_an_event_copy_in_a_later_partition_counts_when_the_first_leaves(tmp_path) -> None:
    """An order's span of event partitions covers every copy of its events: the copy that
    stays is found when the first copy's partition leaves (found in review)."""
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(2)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    pickup = {"event_id": 1, "event_type": "picked_up", "event_at": ts(2026, 3, 1, 2)}
    write_rows(raw, "logistics", days[0], [pickup], "first")
    write_rows(raw, "logistics", days[1], [pickup], "copy")
    write_rows(raw, "orders", days[1], [{"order_id": 1, "paid_at": ts(2026, 3, 2, 1)}], "o")
    for day in days[1:]:
        scratch, incremental = scratch_then_incremental(raw, out, rules, day)
        assert not differences(incremental, scratch), day
    assert indicator_row(incremental.tables, 1, "track_anomaly_rate")["denominator"] == 1
    assert not state_drift(raw, out, rules, days[2])


def test_an_order_arriving_after_its_events_gets_them(tmp_path) -> None:
    """Events stored while their order had no row are found when the order arrives (orphans)."""
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(3)
    days = [dt.date(2026, 3, d) for d in (1, 2, 3)]
    pickup = {"event_type": "picked_up", "event_at": ts(2026, 3, 1, 6)}
    write_rows(raw, "logistics", days[0], [pickup], "pickup")
    runs = [scratch_then_incremental(raw, out, rules, days[0])]
    late_order = {"paid_at": ts(2026, 3, 1, 1), "updated_at": ts(2026, 3, 1, 2)}
    write_rows(raw, "orders", days[1], [late_order], "late-order")
    runs.append(scratch_then_incremental(raw, out, rules, days[1]))
    for scratch, incremental in runs:
        assert not differences(incremental, scratch)
    assert indicator_row(runs[1][1].tables, 1, "pickup_on_time_rate")["numerator"] == 1
    assert runs[1][1].manifest["state"]["night"]["orders_recomputed"] == 1


# --------------------------------------------------------------------------------------------
# the sample data


RULES = load_rules(DEFAULT_RULES_PATH)
D = dt.date(2026, 2, 28)


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sample's 10-09 from an empty state, then 10-10 on top of it."""
    out = tmp_path_factory.mktemp("nightly") / "out"
    first = run_day(small_raw(), out, RULES, D - dt.timedelta(days=1), force=True)
    scratch, nightly = scratch_then_incremental(small_raw(), out, RULES, D)
    return {"out": out, "first": first, "scratch": scratch, "nightly": nightly}


# the logs with a partition every day of the sample (the optional appeals log has days without)
EVERY_DAY = [name for name, schema in LOGS.items() if not schema.optional]


def test_first_run_loads_the_whole_window(nightly) -> None:
    state = nightly["first"].manifest["state"]
    assert state["location"] == str(nightly["out"] / STATE_DIR)
    assert all(len(state["partitions_loaded"][log]) == 30 for log in EVERY_DAY)
    assert set(state["partitions_kept"].values()) == {0}


def test_nightly_run_reads_only_the_new_partition(nightly) -> None:
    state = nightly["nightly"].manifest["state"]
    loaded, evicted = state["partitions_loaded"], state["partitions_evicted"]
    assert {log: loaded[log] for log in EVERY_DAY} == {log: ["2026-02-28"] for log in EVERY_DAY}
    assert {log: evicted[log] for log in EVERY_DAY} == {log: ["2026-01-29"] for log in EVERY_DAY}
    assert {state["partitions_kept"][log] for log in EVERY_DAY} == {29}
    first = nightly["first"].manifest["state"]["night"]
    # a night folds the day's events into the orders they name; it recomputes few
    assert state["night"]["orders_folded"] > 0
    assert state["night"]["orders_recomputed"] < first["orders_folded"] / 10
    assert not differences(nightly["nightly"], nightly["scratch"])


def test_a_night_writes_only_what_changed(nightly) -> None:
    """Files of dates the night did not touch are the previous version's, by name."""
    store = StateStore(str(nightly["out"] / STATE_DIR))
    manifest, _ = store.latest()
    files = [
        (table, key, name)
        for shard in range(manifest.meta["shards"])
        for table, keys in manifest.shard_files(shard).items()
        for key, names in keys.items()
        for name in names
    ]
    this_night = f"/{manifest.version:08d}-"
    written = [f for f in files if this_night in f[2]]
    assert 0 < len(written) < len(files) / 2
    # the events, refunds and sessions of the new day only
    per_partition = {(t, k) for t, k, _ in written if t in ("events", "refunds", "sessions")}
    assert {k for _, k in per_partition} == {"2026-02-28"}


def test_nightly_runs_keep_the_current_state_of_the_stored_rows(nightly) -> None:
    assert not state_drift(small_raw(), nightly["out"], RULES, D)


def test_a_rerun_reads_nothing_and_gives_the_same_tables(nightly) -> None:
    again = run_day(small_raw(), nightly["out"], RULES, D, force=True)
    assert again.manifest["state"]["files_read"] == 0
    assert not differences(again, nightly["nightly"])


def test_a_run_for_an_older_date_equals_its_from_scratch_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_day(small_raw(), out, RULES, D, force=True)
    scratch, back = scratch_then_incremental(small_raw(), out, RULES, dt.date(2026, 2, 23))
    assert "after 2026-02-23" in back.manifest["state"]["rebuilt_because"]
    assert not differences(back, scratch)


def test_state_for_another_window_is_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_day(small_raw(), out, RULES, D, force=True)
    data = default_rules_dict()
    data["window_days"] = 28
    shorter = parse_rules(data, "w28")
    scratch, again = scratch_then_incremental(small_raw(), out, shorter, D)
    assert "window_days" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, scratch)


def test_rebuild_gives_the_same_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(small_raw(), out, RULES, D, force=True)
    rebuilt = run_day(small_raw(), out, RULES, D, force=True, state=StateOptions(rebuild=True))
    assert rebuilt.manifest["state"]["rebuilt_because"] == "--rebuild"
    assert set(rebuilt.manifest["state"]["partitions_kept"].values()) == {0}
    assert not differences(rebuilt, first)


def test_a_damaged_state_file_is_found_and_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(small_raw(), out, RULES, D, force=True)
    data = sorted((out / STATE_DIR / "data").rglob("*.parquet"))
    data[len(data) // 2].write_bytes(b"PAR1 torn PAR1")
    again = run_day(small_raw(), out, RULES, D, force=True)
    assert "state file" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, first)


def test_a_manifest_that_cannot_be_read_rebuilds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(small_raw(), out, RULES, D, force=True)
    (manifest,) = (out / STATE_DIR / "manifests").glob("*.json")
    manifest.write_text("{ torn")
    again = run_day(small_raw(), out, RULES, D, force=True)
    assert "cannot be read" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, first)


def test_a_bad_new_file_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(small_raw(), raw)
    run_day(raw, out, RULES, D - dt.timedelta(days=1), force=True)
    store = StateStore(str(out / STATE_DIR))
    before, _ = store.latest()
    bad = raw / "orders" / f"dt={D}" / "zz-bad.parquet"
    bad.write_bytes(b"PAR1 not parquet PAR1")
    with pytest.raises(InputError, match=r"zz-bad\.parquet"):
        run_day(raw, out, RULES, D, force=True)
    after, _ = store.latest()
    assert after == before
    bad.unlink()
    scratch, fixed = scratch_then_incremental(raw, out, RULES, D)
    assert fixed.manifest["state"]["rebuilt_because"] is None
    assert not differences(fixed, scratch)


def test_a_changed_old_partition_rebuilds(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(small_raw(), raw)
    run_day(raw, out, RULES, D, force=True)
    # a restated partition: one of its files is removed upstream
    partition = raw / "refunds" / "dt=2026-02-19"
    removed = sorted(partition.glob("*.parquet"))[0]
    removed.unlink()
    scratch, again = scratch_then_incremental(raw, out, RULES, D)
    assert "was removed" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, scratch)


def test_a_late_file_in_a_partition_already_read_is_folded_in(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(small_raw(), raw)
    run_day(raw, out, RULES, D, force=True)
    partition = raw / "orders" / "dt=2026-02-21"
    first = sorted(partition.glob("*.parquet"))[0]
    late = (
        pl.read_parquet(first)
        .head(50)
        .with_columns(
            review_rating=pl.lit(1, pl.Int8),
            updated_at=pl.col("updated_at") + dt.timedelta(hours=1),
        )
    )
    late.filter(pl.col("updated_at").dt.date() < dt.date(2026, 2, 21)).write_parquet(
        partition / "zz-late.parquet"
    )
    scratch, again = scratch_then_incremental(raw, out, RULES, D)
    state = again.manifest["state"]
    assert state["rebuilt_because"] is None
    assert state["files_read"] == 1
    assert not differences(again, scratch)
    assert not state_drift(raw, out, RULES, D)


@pytest.mark.parametrize("shards", [1, 3, 8])
def test_shard_count_does_not_change_the_tables(nightly, shards: int) -> None:
    result = run_day(
        small_raw(), nightly["out"], RULES, D, publish=False, state=StateOptions(shards=shards)
    )
    assert result.manifest["execution"]["shards"] == shards
    assert not differences(result, nightly["scratch"])


def test_another_shard_count_rebuilds_the_kept_state(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_day(small_raw(), out, RULES, D, force=True)
    again = run_day(small_raw(), out, RULES, D, force=True, state=StateOptions(shards=5))
    assert "shards" in again.manifest["state"]["rebuilt_because"]
    assert again.manifest["state"]["shards"] == 5
    kept = run_day(small_raw(), out, RULES, D, force=True)  # no --shards: the state's count
    assert kept.manifest["state"]["rebuilt_because"] is None
    assert kept.manifest["state"]["shards"] == 5
    assert not differences(again, first)
    assert not differences(kept, first)


@pytest.mark.parametrize("window_days", [7, 60])
def test_window_lengths_from_a_week_to_two_months(tmp_path: Path, window_days: int) -> None:
    data = default_rules_dict()
    data["window_days"] = window_days
    rules = parse_rules(data, f"w{window_days}")
    out = tmp_path / "out"
    for day in (D - dt.timedelta(days=2), D - dt.timedelta(days=1), D):
        scratch, incremental = scratch_then_incremental(small_raw(), out, rules, day)
        assert not differences(incremental, scratch)
    assert incremental.manifest["state"]["rebuilt_because"] is None


@pytest.mark.parametrize(
    "table",
    [
        "orders",  # the last paid date's rows: pending, so looked up every night
        "totals",  # the window's sums the driver keeps
    ],
)
def test_a_damaged_data_block_of_the_same_size_is_found(tmp_path: Path, table: str) -> None:
    """Page checksums: bytes flipped inside a state file that every night reads, its size
    unchanged. (A file read only on demand, such as a partition's events or an old date's
    orders, is checked when a night needs it.)"""
    out = tmp_path / "out"
    first = run_day(small_raw(), out, RULES, D, force=True)
    files = sorted((out / STATE_DIR / "data").glob(f"*/{table}/*/*.parquet"))
    damaged = max(files, key=lambda p: (p.parent.name, p.stat().st_size))
    data = bytearray(damaged.read_bytes())
    for i in range(100, 400):
        data[i] ^= 0xFF
    damaged.write_bytes(bytes(data))
    again = run_day(small_raw(), out, RULES, D, force=True)
    assert "state file" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, first)


def test_a_raw_file_rewritten_with_its_size_and_mtime_is_noticed(tmp_path: Path) -> None:
    """The fingerprint is the file's Parquet footer, not its size and modification time."""
    raw, out, rules = tmp_path / "raw", tmp_path / "out", small_rules(3)
    day = dt.date(2026, 3, 2)
    write_rows(raw, "orders", day, [{"review_rating": 4}], "orders")
    path = raw / "orders" / f"dt={day}" / "orders.parquet"
    stat = path.stat()
    first = run_day(raw, out, rules, day, force=True)
    rewritten = tmp_path / "rewritten.parquet"
    frame("orders", [{"review_rating": 1}]).write_parquet(rewritten)
    assert rewritten.stat().st_size == stat.st_size  # the case: same size ...
    shutil.copyfile(rewritten, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and same mtime
    scratch, again = scratch_then_incremental(raw, out, rules, day)
    assert "orders.parquet changed" in again.manifest["state"]["rebuilt_because"]
    assert not differences(again, scratch)
    rated = indicator_row(again.tables, 1, "negative_review_rate")["numerator"]
    assert rated == 1 and indicator_row(first.tables, 1, "negative_review_rate")["numerator"] == 0


def test_a_fifo_named_parquet_is_refused_without_waiting(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_rows(raw, "orders", D, [{}], "orders")
    os.mkfifo(raw / "orders" / f"dt={D}" / "pipe.parquet")
    with pytest.raises(InputError, match=r"pipe\.parquet: not a regular file"):
        run_day(raw, tmp_path / "out", RULES, D, force=True)


def test_a_reader_holding_the_state_open_changes_nothing(tmp_path: Path) -> None:
    """Readers (DuckDB over the state's files, an operator's shell) never make a night set the
    good state aside: there is no database to lock, only immutable files."""
    out = tmp_path / "out"
    run_day(small_raw(), out, RULES, D - dt.timedelta(days=1), force=True)
    held = [p.open("rb") for p in sorted((out / STATE_DIR / "data").rglob("*.parquet"))[:20]]
    try:
        scratch, night = scratch_then_incremental(small_raw(), out, RULES, D)
    finally:
        for handle in held:
            handle.close()
    assert night.manifest["state"]["rebuilt_because"] is None
    assert not differences(night, scratch)


def test_disk_full_while_the_state_is_written_keeps_the_last_version(
    tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out"
    run_day(small_raw(), out, RULES, D - dt.timedelta(days=1), force=True)
    store = StateStore(str(out / STATE_DIR))
    before, _ = store.latest()
    real_write, writes = StateStore.write, []

    def disk_full_after_five(self, frame, relative, *args):
        if len(writes) == 5:
            raise OSError(28, "No space left on device")
        writes.append(relative)
        return real_write(self, frame, relative, *args)

    monkeypatch.setattr(StateStore, "write", disk_full_after_five)
    with pytest.raises(OSError, match="No space left on device"):
        run_day(small_raw(), out, RULES, D, force=True)
    monkeypatch.setattr(StateStore, "write", real_write)
    assert store.latest()[0] == before
    assert not (out / "shop_scores" / f"dt={D}").exists()
    scratch, night = scratch_then_incremental(small_raw(), out, RULES, D)
    assert night.manifest["state"]["rebuilt_because"] is None  # the files it left are deleted
    assert not differences(night, scratch)
    listed = {
        name
        for tables in store.latest()[0].files.values()  # the shards, quarantine and totals
        for keys in tables.values()
        for names in keys.values()
        for name in names
    }
    on_disk = {
        p.relative_to(out / STATE_DIR).as_posix()
        for p in (out / STATE_DIR / "data").rglob("*.parquet")
    }
    assert on_disk == listed  # no stale file left
