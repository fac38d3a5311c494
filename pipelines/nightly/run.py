"""One nightly run, and a backfill of many: load, score, publish, write the manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from pipelines import logs
from pipelines.config import SHIPPED_RULES, shipped_rules_bytes
from pipelines.errors import ExpscoreError, InputError
from pipelines.executors import executor_session
from pipelines.ingest.load import WindowLoad, latest_partition_date, list_partitions
from pipelines.layout import (
    MANIFEST_DIR,
    default_exchange,
    held_manifest_path,
    manifest_path,
    partition_dir,
    partition_path,
)
from pipelines.nightly.gates import (
    GateResult,
    band_change_gate,
    min_rows_gates,
    quarantine_gates,
    row_count_gates,
    window_rows_gates,
)
from pipelines.nightly.lock import output_lock
from pipelines.nightly.publish import (
    clean_stale_staging,
    fsync_dir,
    publish_partition,
    read_partition,
    write_json_atomic,
)
from pipelines.state import DEFAULT_STATE, StateOptions, state_for_run, window_facts
from pipelines.version import code_version
from scoring.contract import (
    LOGS,
    PREVIOUS_LABELS_SCHEMA,
    PREVIOUS_WEIGHTS_SCHEMA,
    QUARANTINE_TABLE,
    TABLE_KEYS,
    TABLE_SCHEMAS,
)
from scoring.daily import rules_window, score_facts
from scoring.exemptions import exemption_account
from scoring.rules import Rules, RulesError, parse_rules
from scoring.window import Window


class RulesFileError(InputError):
    """A rules file that cannot be used (exit 2). `str()` is one line with every problem, for
    the error line of `run`; `lines` has one line per problem, for `expscore rules check`."""

    def __init__(self, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.lines = lines or [message]


def load_rules(path: Path | None) -> Rules:
    """The rules file at `path`, or the shipped defaults (SCORING.md 11), validated by
    `scoring.rules.parse_rules`: `run`, `rules check` and the analyst commands share it."""
    if path is None:
        content = shipped_rules_bytes()
        source = f"<default {SHIPPED_RULES}>"
    else:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise RulesFileError(f"rules file {path}: cannot be read ({exc.strerror})") from exc
        source = str(path)
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RulesFileError(f"rules file {source}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"rules file {source}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise RulesFileError(f"rules file {source}: nested too deeply to be a rules file") from exc
    try:
        rules = parse_rules(data, source)
    except RulesError as exc:
        hint = (
            f" (each on a line of its own: expscore rules check {path})"
            if len(exc.problems) > 1
            else ""
        )
        raise RulesFileError(str(exc) + hint, exc.lines()) from exc
    return replace(rules, sha256=hashlib.sha256(content).hexdigest())


@dataclass
class RunResult:
    run_date: dt.date
    out: Path
    tables: dict[str, pl.DataFrame]
    manifest: dict
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class History:
    """What the run published for D-1 that D builds on (8, 9): held labels and weights.

    `used` says, per table, which partition was read, its rows and the run id of the run that
    published it (None: nothing was published for D-1, as on a first run); the manifest records
    it, since labels (hysteresis) and weights (the daily clamp) depend on it (12.17).
    """

    labels: pl.LazyFrame
    weights: pl.LazyFrame
    used: dict[str, dict | None]


HISTORY = {"shop_labels": PREVIOUS_LABELS_SCHEMA, "shop_traffic_weights": PREVIOUS_WEIGHTS_SCHEMA}


def previous_outputs(out: Path, run_date: dt.date) -> History:
    """Labels and weights published for D-1, checked against the table contract.

    D-1 counts as published when its manifest is there; then both partitions must be, readable,
    with the contract's columns and one row per key, or the run stops naming the partition: a
    copied file would double every shop's weight rows, a deleted partition would silently drop
    every label's `since`. Without a manifest and without partitions, nothing was held on D-1.
    """
    day = run_date - dt.timedelta(days=1)
    published = manifest_path(out, day).is_file()
    # the run that published D-1 (null for a manifest written before runs had ids)
    previous_run = (_published_manifest(out, day) or {}).get("run_id") if published else None
    frames, used = {}, {}
    for table, schema in HISTORY.items():
        folder = partition_dir(out, table, day)
        try:
            frame = read_partition(out, table, day)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{folder}: D-1 history cannot be read ({exc})") from exc
        if frame is not None and not published:
            raise InputError(
                f"{folder}: D-1 has tables but no manifest ({manifest_path(out, day)}): its run "
                f"did not finish publishing. Rerun `expscore run --date {day}` first"
            )
        if frame is None:
            if published:
                raise InputError(
                    f"{folder}: missing, though {day} was published ({manifest_path(out, day)}); "
                    "labels and weights of D build on it. Restore it, or rerun "
                    f"`expscore run --date {day}`"
                )
            frames[table], used[table] = pl.LazyFrame(schema=schema), None
            continue
        missing = [c for c in TABLE_SCHEMAS[table] if c not in frame.columns]
        if missing:
            raise InputError(f"{folder}: D-1 history lacks column(s) {', '.join(missing)}")
        key = TABLE_KEYS[table]
        repeated = frame.select(key).is_duplicated().sum()
        if repeated:
            files = sorted(p.name for p in folder.glob("*.parquet"))
            raise InputError(
                f"{folder}: D-1 history has {repeated} rows whose key ({', '.join(key)}) is not "
                f"unique (files: {', '.join(files)}); a partition holds one file per run"
            )
        frames[table] = frame.lazy().select([pl.col(c).cast(t) for c, t in schema.items()])
        used[table] = {
            "dt": day.isoformat(),
            "path": partition_path(table, day),
            "rows": frame.height,
            "run_id": previous_run,
        }
    return History(frames["shop_labels"], frames["shop_traffic_weights"], used)


# Called as a stage of a run ends: its name (state, score, publish) and its seconds and counts.
OnStage = Callable[[str, dict[str, object]], None]


class HeldError(ExpscoreError):
    """A quality gate held publication; the previous tables stay. Exit 3 (see --force)."""

    exit_code = 3


def run_day(
    raw: Path,
    out: Path,
    rules: Rules,
    run_date: dt.date | None = None,
    publish: bool = True,
    force: bool = False,
    state: StateOptions = DEFAULT_STATE,
    on_stage: OnStage | None = None,
) -> RunResult:
    """Score one business date and publish its tables atomically, holding the output lock.

    With `publish=False` nothing under `out` changes: not the tables, not the state.
    `on_stage(name, fields)` is called as each stage (state, score, publish) ends, with its
    seconds and counts: the CLI logs a line for it while the run goes on.
    """
    run_id = invocation_run_id()
    if not publish:
        state = replace(state, rebuild=False, keep=False)
    with output_lock(out) if publish else contextlib.nullcontext():
        if publish:
            clean_stale(out)
        return _run_day(
            raw,
            out,
            rules,
            run_date,
            publish=publish,
            force=force,
            state=state,
            on_stage=on_stage,
            run_id=run_id,
        )


def invocation_run_id() -> str:
    """The run id of this invocation (the CLI's, which its log lines carry), or a new one when
    the pipeline is called as a library."""
    context = logs.bound()
    return (context or logs.RunContext.new(None)).run_id


def _run_day(
    raw: Path,
    out: Path,
    rules: Rules,
    run_date: dt.date | None,
    publish: bool,
    force: bool,
    state: StateOptions,
    on_stage: OnStage | None = None,
    run_id: str | None = None,
) -> RunResult:
    started_at = logs.utc_now()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str, **counts: object) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 4)
        clock = now
        if on_stage is not None:
            on_stage(stage, {"seconds": timings[stage], **counts})

    run_date = run_date or latest_partition_date(raw)
    window = rules_window(rules, run_date)
    require_input(raw, window)
    with state_for_run(out, state) as location:
        night = window_facts(raw, window, location, state)
    loaded = night.load
    lap(
        "state",
        files_read=night.state.get("files_read"),
        rebuilt_because=night.state.get("rebuilt_because"),
        rows_read=sum(loaded.rows_read.values()),
        rows_rejected=sum(sum(r.values()) for r in loaded.rejected.values()),
    )
    history = previous_outputs(out, run_date)
    lazy = score_facts(night.facts, rules, history.labels, history.weights)
    names = list(lazy)
    tables = dict(zip(names, pl.collect_all([lazy[n] for n in names]), strict=True))
    lap(
        "score",
        shops=tables["shop_scores"].height,
        items=tables["item_scores"].height,
        labels=tables["shop_labels"].height,
    )

    quarantine = loaded.quarantine.with_columns(
        dt=pl.lit(run_date, pl.Date), rules_version=pl.lit(rules.version)
    )
    gates = evaluate_gates(loaded, quarantine, tables, out, run_date, rules)
    failed = [g for g in gates if not g.passed]
    status = "published" if not failed else ("forced" if force else "held")
    manifest = build_manifest(run_date, raw, out, rules, loaded, tables, quarantine, timings)
    manifest["exemptions"] = exemption_account(night.facts.activity.collect(), rules.exemptions)
    manifest["appeals"] = loaded.appeals_summary
    manifest.update(
        run_id=run_id or invocation_run_id(),
        code_version=str(code_version()),
        started_at=logs.iso_utc(started_at),
        finished_at=None,  # set as the manifest is written, after the last table
        previous_run_id=_previous_run_id(history.used),
    )
    manifest["status"] = status
    manifest["gates"] = [g.to_dict() for g in gates]
    manifest["previous"] = history.used
    manifest["state"] = night.state
    manifest["execution"] = night.execution
    result = RunResult(run_date, out, tables, manifest, timings)
    if not publish:
        manifest["finished_at"] = logs.iso_utc(logs.utc_now())
        return result
    if status == "held":
        manifest["finished_at"] = logs.iso_utc(logs.utc_now())
        write_json_atomic(held_manifest_path(out, run_date), manifest)
        reasons = "; ".join(g.message for g in failed)
        raise HeldError(
            f"{run_date}: publication held by quality gate(s): {reasons}. The previous tables "
            f"stay published; see {held_manifest_path(out, run_date)}; rerun with --force to "
            "publish anyway"
        )
    # A date is published while its manifest is there. Take it back first, so that a run that
    # dies between two tables (disk full, a kill) leaves the date unpublished, not a mix of two
    # runs' tables under the older run's manifest; the new manifest is written last.
    retract_manifest(out, run_date)
    for name in TABLE_SCHEMAS:
        publish_partition(out, name, run_date, tables[name])
    publish_partition(out, QUARANTINE_TABLE, run_date, quarantine)
    lap("publish", status=status, gates_failed=len(failed), tables=len(manifest["outputs"]))
    manifest["timings_seconds"] = timings
    manifest["finished_at"] = logs.iso_utc(logs.utc_now())
    write_json_atomic(manifest_path(out, run_date), manifest)
    held_manifest_path(out, run_date).unlink(missing_ok=True)
    return result


def require_input(raw: Path, window: Window) -> None:
    """A window with no partition of any log is an input error (exit 2), never a day of zeros.

    Some logs missing is for the gates to judge (the row count and window gates hold it).
    """
    if not raw.is_dir():
        raise InputError(f"{raw}: raw folder does not exist")
    dates = set(window.partition_dates())
    if not any(d in dates for log in LOGS for d in list_partitions(raw, log)):
        raise NoInputError(
            f"{raw}: no partition of any log in the window {window.first_date}..{window.run_date}"
            " (expected <raw>/<log>/dt=YYYY-MM-DD/); nothing is published"
        )


class NoInputError(InputError):
    """A date whose window holds no partition of any log (exit 2 for `run`; `backfill` skips
    the date and goes on, see `backfill`)."""


def evaluate_gates(
    loaded: WindowLoad,
    quarantine: pl.DataFrame,
    tables: dict[str, pl.DataFrame],
    out: Path,
    run_date: dt.date,
    rules: Rules,
) -> list[GateResult]:
    day_before = run_date - dt.timedelta(days=1)
    previous_scores = read_partition(out, "shop_scores", day_before)
    trailing = [run_date - dt.timedelta(days=n) for n in range(1, rules.gates.trailing_days + 1)]
    recorded = {day: _recorded_rows(manifest) for day in trailing
                if (manifest := _published_manifest(out, day)) is not None}  # fmt: skip
    before = _published_manifest(out, day_before)
    window_before = (
        {log: entry["rows_read"] for log, entry in before["inputs"].items()} if before else None
    )
    return [
        *row_count_gates(loaded.files, run_date, rules.gates, recorded),
        *min_rows_gates(loaded.files, run_date, rules.gates),
        *window_rows_gates(loaded.files, window_before, rules.gates),
        *quarantine_gates(loaded.files, quarantine, run_date, rules.gates),
        *band_change_gate(tables["shop_scores"], previous_scores, rules.gates),
    ]


def _published_manifest(out: Path, day: dt.date) -> dict | None:
    """The manifest of a published date, or None (never run, held, or unreadable)."""
    try:
        return json.loads(manifest_path(out, day).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _recorded_rows(manifest: dict) -> dict[str, int]:
    """Rows of its own day's partition per log, as the run of that day read them."""
    rows: dict[str, int] = {}
    for entry in manifest.get("files", []):
        if entry["dt"] == manifest["run_date"]:
            rows[entry["log"]] = rows.get(entry["log"], 0) + entry["rows"]
    return rows


def clean_stale(out: Path) -> None:
    """Remove what a killed run left behind: staging folders, temporary manifests, shard files."""
    if not out.is_dir():
        return
    shutil.rmtree(default_exchange(out), ignore_errors=True)
    for table_dir in out.iterdir():
        if table_dir.is_dir():
            clean_stale_staging(table_dir)
    manifests = out / MANIFEST_DIR
    if manifests.is_dir():
        for tmp in manifests.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def retract_manifest(out: Path, run_date: dt.date) -> None:
    """Unpublish a date before its tables are replaced (durably: the rename of the folder
    entry is synced before the first table moves)."""
    path = manifest_path(out, run_date)
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)


def build_manifest(
    run_date: dt.date,
    raw: Path,
    out: Path,
    rules: Rules,
    loaded: WindowLoad,
    tables: dict[str, pl.DataFrame],
    quarantine: pl.DataFrame,
    timings: dict[str, float],
) -> dict:
    """What went in, what was rejected and why, what came out: the run's audit record.

    The provenance keys (`run_id`, `code_version`, `started_at`, `finished_at`,
    `previous_run_id`) are filled in by the run; they come first, so a reader sees them first.
    """
    return {
        "run_id": None,
        "run_date": run_date.isoformat(),
        "status": None,
        "code_version": None,
        "started_at": None,
        "finished_at": None,
        "rules_version": rules.version,
        "rules_source": rules.source,
        "rules_sha256": rules.sha256,
        "previous_run_id": None,
        "raw": str(raw),
        "out": str(out),
        "inputs": {
            log: {
                "files": sum(1 for f in loaded.files if f["log"] == log),
                "rows_read": loaded.rows_read[log],
                "rows_rejected": sum(loaded.rejected[log].values()),
                "rows_current": loaded.rows_current[log],
                "missing_partitions": loaded.missing_partitions[log],
            }
            for log in loaded.rows_read
        },
        "files": [{**entry, **_file_stat(raw / entry["path"])} for entry in loaded.files],
        "rejected_by_reason": {log: reasons for log, reasons in loaded.rejected.items() if reasons},
        "outputs": {
            name: {"rows": frame.height, "path": partition_path(name, run_date)}
            for name, frame in {**tables, QUARANTINE_TABLE: quarantine}.items()
        },
        "timings_seconds": timings,
    }


def _file_stat(path: Path) -> dict[str, object]:
    """A raw file's size in bytes and modification time (UTC) as the run found it; nulls for a
    file gone since it was read. (The state tells a changed file by its Parquet footer too.)"""
    try:
        st = path.stat()
    except OSError:
        return {"size": None, "mtime": None}
    mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
    return {"size": st.st_size, "mtime": logs.iso_utc(mtime)}


def _previous_run_id(used: dict[str, dict | None]) -> str | None:
    """The run id of the D-1 run whose labels and weights this date built on (None: none)."""
    ids = {entry["run_id"] for entry in used.values() if entry is not None}
    return next(iter(ids)) if len(ids) == 1 else None


def backfill(
    raw: Path,
    out: Path,
    rules: Rules,
    start: dt.date,
    end: dt.date,
    on_day: Callable[[RunResult], None] | None = None,
    force: bool = False,
    state: StateOptions = DEFAULT_STATE,
    on_skip: Callable[[dt.date, str], None] | None = None,
) -> list[dict]:
    """Run every date from start to end in order: labels and weights carry over day to day.

    Returns each day's manifest, in order. A day's tables go to `on_day` and are published,
    never kept: a backfill holding every day's tables grew by about 0.5 GB a day at M (17 GiB
    after 30 days), so its memory would grow with its length.

    A held day stops the backfill: the days after it would build on its missing tables.
    A day whose window has no partition of any log is skipped, reported to `on_skip` (the day
    and why), and the backfill goes on: nothing could be published for it, and the day after
    loses nothing by it (its own window then holds only its own partition, so it is a first
    run, exactly as it would be had the day been published empty). Such days are typically
    the start of a range reaching back before the logs begin, or its end past them. Nothing
    published at all (every day skipped) is an input error, as for `run`. Any other error stops
    the backfill; the days before it stay published.
    """
    if end < start:
        raise InputError(f"backfill: --end {end} is before --start {start}")
    manifests: list[dict] = []
    skipped: list[dt.date] = []
    run_id = invocation_run_id()  # one invocation, one run id: every day's manifest has it
    with output_lock(out), executor_session(state.executor):
        clean_stale(out)
        day = start
        while day <= end:
            try:
                result = _run_day(
                    raw, out, rules, day, publish=True, force=force, state=state, run_id=run_id
                )
            except NoInputError as exc:
                skipped.append(day)
                if on_skip:
                    on_skip(day, str(exc))
                day += dt.timedelta(days=1)
                continue
            state = replace(state, rebuild=False)  # rebuild only once
            manifests.append(result.manifest)
            if on_day:
                on_day(result)
            del result  # the next day runs without this day's tables
            day += dt.timedelta(days=1)
    if not manifests:
        raise NoInputError(
            f"{raw}: no partition of any log in the window of any date {start}..{end} "
            f"({len(skipped)} date{'s' * (len(skipped) != 1)} skipped); nothing is published"
        )
    return manifests
