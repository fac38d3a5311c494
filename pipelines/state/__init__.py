"""The window state: what a night keeps of the raw window, so that it reads only the new day.

A run for date D needs the current state of the logs over the partitions D-(W-1)..D; the night
before needed D-W..D-1. The state keeps, split into shards by order (and session), the order
rows of the window with their tracking facts, and the stored versions of everything a rare case
must look at again; a night

1. (driver, `ingest`) reads only the raw files the state has not read, checks them, quarantines
   the bad rows and routes the good ones to their shards;
2. (one task per shard, on the executor: this process, a process pool or Ray; `shard`) folds
   them into the shard's files, drops the dates that left the window, writes only the files
   that changed, and writes the shard's per-shop sums and per-item counts;
3. (driver) commits the new version (`store`: a manifest of immutable files) and adds the
   shards' sums up; only the small global steps (priors, percentiles, labels, weights) see all
   shops at once.

The state is a cache of the raw folder, which stays the source of truth: from scratch is the same
code over an empty state (one pass per log over the whole window), and a state that cannot serve
a run (`--rebuild`, another window length, time zone or shard count, an older date, a raw file
changed or removed after it was read, a damaged file) is rebuilt, with the reason in the
manifest. Nothing in it depends on the rules beyond the window's length and time zone.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from pipelines.config import MAX_SHARDS, ORDERS_PER_SHARD
from pipelines.errors import InputError
from pipelines.executors import IN_PROCESS, ExecutorOptions, open_executor
from pipelines.executors.exchange import Exchange, is_uri, subfolder
from pipelines.ingest.load import WindowLoad, list_partitions
from pipelines.layout import EXCHANGE_DIR, default_state_location
from pipelines.state.appeals import APPEALS, appeals_report, keep_appeals, kept_appeals
from pipelines.state.ingest import (
    ROUTING,
    CheckedFile,
    SyncPlan,
    check_new_files,
    connect,
    ingest,
    plan_sync,
)
from pipelines.state.shard import (
    GONE,
    ORDER_ROW_SCHEMA,
    REFUND_ROW_SCHEMA,
    REFUNDS_CURRENT,
    SUMS,
    ShardDone,
    ShardNight,
    ShardTask,
    merge_sums,
    shard_night,
)
from pipelines.state.store import Manifest, StateDamaged, StateStore
from scoring.activity import ShopSums, add_up, shop_activity
from scoring.contract import LOGS, QUARANTINE_SCHEMA
from scoring.daily import DayFacts
from scoring.product import merge_item_counts
from scoring.settling import net_sums
from scoring.window import Window

log = logging.getLogger(__name__)

# v2.1: raw files fingerprinted by their Parquet footer; page checksums. v2.2: the settled
# orders' sums kept, order rows with their refund flags, sorted by order_id for lookups.
# v2.3: the current refunds and sessions kept. v2.4: the driver keeps the window's order and
# session sums; a shard sends what its night changes in them; sessions summed by start date.
# v2.5: refunds summed by day too, and the current refunds kept as delta files.
# v2.6: order rows carry `ship_to_region` (spec v1.1, 13.1).
FORMAT = "v2.6"
QUARANTINE = "quarantine"  # the manifest's files entry of the quarantined rows, by log and dt
TOTALS = "totals"  # the manifest's files entry of the window's sums kept by the driver
# Order versions per shard when the shard count is chosen (at the state's first build).


@dataclass(frozen=True)
class StateOptions:
    """How a run uses the window state.

    `location` is a folder or object-store URI (default `<out>/.state`); `rebuild` starts it
    over; `shards` is its number of shards, fixed when it is built (None: the stored state's,
    or about `ORDERS_PER_SHARD` order versions each; another number rebuilds it); `executor`
    runs the shard tasks; `keep` False builds a state in a temporary folder that is dropped
    after the run (a run that must not write, or a from-scratch check).
    """

    rebuild: bool = False
    shards: int | None = None
    keep: bool = True
    executor: ExecutorOptions = IN_PROCESS
    location: str | None = None

    def __post_init__(self) -> None:
        if self.shards is not None and not 1 <= self.shards <= MAX_SHARDS:
            raise InputError(f"--shards {self.shards}: must be between 1 and {MAX_SHARDS}")


DEFAULT_STATE = StateOptions()


@dataclass
class WindowFacts:
    """A night's result: the facts to score, what the manifest reports of the input and state."""

    facts: DayFacts
    load: WindowLoad
    state: dict = field(default_factory=dict)
    execution: dict = field(default_factory=dict)


def state_location(out: Path, options: StateOptions) -> str:
    return options.location or default_state_location(out)


@contextmanager
def state_for_run(out: Path, options: StateOptions) -> Iterator[str]:
    """The state's location for a run: the kept one, or a temporary folder dropped afterwards."""
    if options.keep:
        yield state_location(out, options)
        return
    with tempfile.TemporaryDirectory(prefix="expscore-state-") as folder:
        yield folder


def window_facts(raw: Path, window: Window, location: str, options: StateOptions) -> WindowFacts:
    """Bring the state at `location` to `window` and return the window's facts.

    A state that turns out damaged while it is read is rebuilt once, from raw.
    """
    store = StateStore(location)
    _remove_format_1(location)
    manifest, reason = _usable(store, window, options)
    try:
        return _night(raw, window, store, manifest, reason, options)
    except StateDamaged as exc:
        store.wipe()
        return _night(raw, window, store, None, str(exc), options)


def _usable(
    store: StateStore, window: Window, options: StateOptions
) -> tuple[Manifest | None, str | None]:
    """The stored manifest if it can serve `window`, else None and why it cannot."""
    manifest, damaged = store.latest()
    reason = "--rebuild" if options.rebuild else damaged
    if manifest is not None and reason is None:
        wanted = {**_meta(window), "shards": options.shards or manifest.meta.get("shards")}
        for name, value in wanted.items():
            if manifest.meta.get(name) != value:
                reason = f"state {name} is {manifest.meta.get(name)!r}, the run needs {value!r}"
                break
        else:
            if manifest.run_date and window.run_date.isoformat() < manifest.run_date:
                reason = f"the state is at {manifest.run_date}, after {window.run_date}"
    if reason is not None or manifest is None:
        store.wipe()
        return None, reason
    return manifest, None


def _meta(window: Window) -> dict:
    """What a state is built for: another window length, time zone or set of exemptions
    (which change what rows the kept sums count) needs another state."""
    return {
        "format": FORMAT,
        "window_days": window.days,
        "timezone": window.tz,
        "exemptions": [e.as_data() for e in window.exemptions],
        "routing": ROUTING,
    }


def _night(
    raw: Path,
    window: Window,
    store: StateStore,
    manifest: Manifest | None,
    reason: str | None,
    options: StateOptions,
) -> WindowFacts:
    plan = plan_sync(raw, window, manifest.raw if manifest else None)
    if plan.rebuild_reason is not None:
        store.wipe()
        manifest, reason = None, plan.rebuild_reason
        plan = plan_sync(raw, window, None)
    if reason:
        # a rebuild reads the whole window: an operator wants to know why (not for --rebuild)
        level = logging.INFO if reason == "--rebuild" else logging.WARNING
        log.log(level, "window state rebuilt from raw: %s", reason)
    version = (manifest.version if manifest else 0) + 1
    with tempfile.TemporaryDirectory(prefix="expscore-duckdb-") as spill:
        con = connect(Path(spill))
        try:
            checked = check_new_files(con, plan.new)
            shards = (
                int(manifest.meta["shards"])
                if manifest
                else options.shards or _auto_shards(plan, checked, window)
            )
            with _exchange(store.location, options.executor) as exchange:
                ingested = ingest(con, plan.new, checked, window, shards, exchange)
                con.close()  # DuckDB's memory is free before the shard tasks run
                quarantine = _quarantine_files(
                    store, manifest, ingested.quarantine, window, version
                )
                previous = _stored_window(manifest, window)
                appeal_files, upheld, appeals = keep_appeals(
                    store, manifest, exchange, window, previous, version
                )
                tasks = [
                    ShardTask(
                        s,
                        store.location,
                        manifest.shard_files(s) if manifest else {},
                        exchange.location,
                        window,
                        version,
                        previous,
                    )
                    for s in range(shards)
                ]
                with open_executor(options.executor, shards) as runner:
                    done: list[ShardDone] = runner.map(shard_night, tasks)
                sums = merge_sums(exchange, shards)
        finally:
            con.close()
    totals, totals_files = _window_totals(store, manifest, sums, version)
    committed = Manifest(
        version=version,
        meta={**_meta(window), "shards": shards},
        run_date=window.run_date.isoformat(),
        raw=_raw_entries(manifest, plan, ingested.counts, window),
        files={
            **{str(d.shard): d.files for d in done},
            QUARANTINE: quarantine,
            TOTALS: totals_files,
            APPEALS: {APPEALS: appeal_files},
        },
    )
    store.commit(committed)
    store.collect_garbage(committed)
    return WindowFacts(
        facts=_facts(totals, window),
        load=_window_load(store, committed, raw, window, done, appeals, upheld.now),
        state=_state_report(store, committed, manifest, plan, reason, done),
        execution=_execution_report(options.executor, done),
    )


def _window_totals(
    store: StateStore, manifest: Manifest | None, changes: dict[str, pl.DataFrame], version: int
) -> tuple[dict[str, pl.DataFrame], dict[str, dict[str, dict[str, int]]]]:
    """The window's sums kept from night to night (`TOTALS`): last night's totals plus what
    every shard says tonight changes in them, and the files that keep them.

    From scratch there are no totals yet and the shards' changes are their whole sums. The
    totals are a few rows per shop and item, the only per-night work that sees them all.
    """
    kept = manifest.files.get(TOTALS, {}) if manifest else {}
    frames = [
        net_sums(
            table,
            [
                changes[table].lazy(),
                *(frame.lazy() for frame in store.read(kept.get(table, {}).get("all", {}))),
            ],
            [],
        )
        for table in SUMS
    ]
    totals = dict(zip(SUMS, pl.collect_all(frames), strict=True))
    files = {}
    for table, frame in totals.items():
        name = store.new_file(0, TOTALS, table, version)
        files[table] = {"all": {name: store.write(frame, name)}}
    return totals, files


def _stored_window(manifest: Manifest | None, window: Window) -> Window | None:
    """The window the stored sums were counted for: the last committed night's (a usable
    state was built for tonight's window length, time zone and exemptions)."""
    if manifest is None or manifest.run_date is None:
        return None
    return replace(window, run_date=dt.date.fromisoformat(manifest.run_date))


@contextmanager
def _exchange(location: str, executor: ExecutorOptions) -> Iterator[Exchange]:
    """The run's exchange folder, under `--exchange` or the state; deleted when the run ends."""
    base = executor.exchange or subfolder(location, EXCHANGE_DIR)
    exchange = Exchange.for_run(base)
    try:
        yield exchange
    finally:
        exchange.remove()


def _auto_shards(plan: SyncPlan, checked: dict[str, CheckedFile], window: Window) -> int:
    """Enough shards for about `ORDERS_PER_SHARD` order versions of a full window each,
    judged from the order files the first build reads (their footers)."""
    orders = [f for f in plan.new if f.log == "orders"]
    if not orders:
        return 1
    rows = sum(checked[f.source].rows for f in orders)
    per_window = rows / len({f.day for f in orders}) * window.days
    return max(1, min(MAX_SHARDS, math.ceil(per_window / ORDERS_PER_SHARD)))


def _quarantine_files(
    store: StateStore,
    manifest: Manifest | None,
    rows: dict[str, dict[str, pl.DataFrame]],
    window: Window,
    version: int,
) -> dict[str, dict[str, dict[str, int]]]:
    """The quarantine's files after this night: one per raw partition and night that read it."""
    first = window.first_date.isoformat()
    files = {
        log: {day: dict(f) for day, f in days.items() if day >= first}
        for log, days in (manifest.files.get(QUARANTINE, {}) if manifest else {}).items()
    }
    for log, days in rows.items():
        for day, frame in days.items():
            name = store.new_file(0, QUARANTINE, f"{log}/{day}", version)
            files.setdefault(log, {}).setdefault(day, {})[name] = store.write(frame, name)
    return files


def _raw_entries(manifest, plan, counts, window: Window) -> dict:
    """Every raw file of the window the state has read, with its fingerprint and counts."""
    first = window.first_date.isoformat()
    entries = {
        log: {day: dict(files) for day, files in days.items() if day >= first}
        for log, days in (manifest.raw if manifest else {}).items()
    }
    by_source = {f.source: f for f in plan.new}
    for log, days in counts.items():
        for day, files in days.items():
            for source, count in files.items():
                entries.setdefault(log, {}).setdefault(day, {})[source] = {
                    "fingerprint": by_source[source].fingerprint,
                    **count,
                }
    return entries


def _facts(sums: dict[str, pl.DataFrame], window: Window) -> DayFacts:
    parts = ShopSums(
        *(sums[name].lazy() for name in ("orders", "refunds", "sessions", "categories"))
    )
    activity = shop_activity(add_up(parts)).collect().sort("shop_id")
    items = merge_item_counts(sums["items"].lazy()).collect()
    return DayFacts(window, items.lazy(), activity.lazy())


def _window_load(
    store: StateStore,
    manifest: Manifest,
    raw: Path,
    window: Window,
    done: list[ShardDone],
    appeals: pl.DataFrame,
    upheld: pl.DataFrame,
) -> WindowLoad:
    """What the manifest and the gates report about the window's raw input.

    An optional log (appeals) has no missing partitions: a day without one had none (13.1).
    `appeals` are the window's current appeals, `upheld` the subjects they remove.
    """
    files, rejected = [], {log: {} for log in LOGS}
    for log in LOGS:
        for day, sources in sorted(manifest.raw.get(log, {}).items()):
            for source, entry in sorted(sources.items()):
                files.append({"log": log, "dt": day, "path": source, "rows": entry["rows"]})
                for reason, n in entry["rejected"].items():
                    rejected[log][reason] = rejected[log].get(reason, 0) + n
    frames = [
        frame
        for days in manifest.files.get(QUARANTINE, {}).values()
        for day_files in days.values()
        for frame in store.read(day_files)
    ]
    quarantine = (
        pl.concat(frames).cast(QUARANTINE_SCHEMA)
        if frames
        else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    ).sort("log", "source_dt", "source_file", "source_row")
    wanted = set(window.partition_dates())
    missing = {
        log: []
        if schema.optional
        else [d.isoformat() for d in sorted(wanted - set(list_partitions(raw, log)))]
        for log, schema in LOGS.items()
    }
    current = {
        "orders": sum(d.counts.get("orders", 0) for d in done),
        "refunds": sum(d.counts.get("refunds", 0) for d in done),
        "logistics": sum(d.counts.get("tracked", 0) for d in done),
        "cs_sessions": sum(d.counts.get("sessions", 0) for d in done),
        "appeals": appeals.height,
    }
    return WindowLoad(
        quarantine=quarantine,
        files=files,
        rows_read={log: sum(f["rows"] for f in files if f["log"] == log) for log in LOGS},
        rows_current=current,
        rejected={log: dict(sorted(r.items())) for log, r in rejected.items()},
        missing_partitions=missing,
        appeals_summary=appeals_report(appeals, upheld),
    )


def _state_report(
    store: StateStore,
    committed: Manifest,
    previous: Manifest | None,
    plan: SyncPlan,
    reason: str | None,
    done: list[ShardDone],
) -> dict:
    """The manifest's `state` section: what the night read, dropped, kept and did."""
    loaded: dict[str, set[str]] = {log: set() for log in LOGS}
    for f in plan.new:
        loaded[f.log].add(f.day.isoformat())
    before = previous.raw if previous else {}
    evicted = {
        log: sorted(set(before.get(log, {})) - set(committed.raw.get(log, {}))) for log in LOGS
    }
    kept = {
        log: len(set(before.get(log, {})) & set(committed.raw.get(log, {})) - loaded[log])
        for log in LOGS
    }
    totals: dict[str, int] = {}
    for d in done:
        for name, value in d.counts.items():
            totals[name] = totals.get(name, 0) + value
    return {
        "location": store.location,
        "version": committed.version,
        "format": FORMAT,
        "rebuilt_because": reason,
        "shards": int(committed.meta["shards"]),
        "files_read": len(plan.new),
        "partitions_loaded": {log: sorted(days) for log, days in loaded.items()},
        "partitions_evicted": evicted,
        "partitions_kept": kept,
        "night": totals,
    }


def _execution_report(executor: ExecutorOptions, done: list[ShardDone]) -> dict:
    seconds = [d.seconds for d in done]
    return {
        "executor": executor.kind,
        "shards": len(done),
        "orders_per_shard_max": max((d.counts.get("orders", 0) for d in done), default=0),
        "shard_seconds_max": round(max(seconds, default=0.0), 4),
        "shard_seconds_total": round(sum(seconds), 4),
    }


def _remove_format_1(location: str) -> None:
    """The DuckDB state of earlier versions (window.duckdb) is replaced by this one."""
    if is_uri(location):
        return
    folder = Path(location)
    for name in ("window.duckdb", "window.duckdb.wal", "window.duckdb.unreadable"):
        (folder / name).unlink(missing_ok=True)
    for name in ("tmp", "shards"):
        shutil.rmtree(folder / name, ignore_errors=True)


def current_state(location: str) -> dict[str, pl.DataFrame]:
    """The current rows a committed state holds, per log, over all its shards.

    For an operator's inspection and the tests: orders are those paid in the window (with
    their tracking facts), events, refunds and sessions the current ones of the window.
    """
    store = StateStore(location)
    manifest, _ = store.latest()
    if manifest is None:
        raise InputError(f"{location}: no window state")
    window = Window(
        dt.date.fromisoformat(manifest.run_date or ""),
        int(manifest.meta["window_days"]),
        manifest.meta["timezone"],
    )
    parts: dict[str, list[pl.DataFrame]] = {log: [] for log in LOGS}
    for shard in range(int(manifest.meta["shards"])):
        task = ShardTask(shard, location, manifest.shard_files(shard), "", window, 0)
        night = ShardNight(task)
        orders = night.read_keyed("orders", ORDER_ROW_SCHEMA, night.keys("orders"))
        parts["orders"].append(orders.drop("_key", GONE))
        parts["logistics"].append(night.current("events", "logistics"))
        refunds = night.read_keyed(
            REFUNDS_CURRENT, REFUND_ROW_SCHEMA, night.keys(REFUNDS_CURRENT), identity="refund_id"
        )
        parts["refunds"].append(refunds.drop("_key", GONE))
        parts["cs_sessions"].append(night.current("sessions", "cs_sessions"))
    parts[APPEALS].append(kept_appeals(store, manifest))
    return {log: pl.concat(frames) for log, frames in parts.items()}
