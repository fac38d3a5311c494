"""The benchmark sequence: generate (or reuse) the data, run every scenario `repeats` times,
compare the tables, and assemble the result the JSON file and the short table report."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipelines.config import MAX_SHARDS, ORDERS_PER_SHARD
from pipelines.devtools import bench_peer
from pipelines.devtools.bench.children import NO_LIMITS, Limits, Measurement, ScenarioFailed
from pipelines.devtools.bench.compare import compare_outputs, compare_peer
from pipelines.devtools.bench.data import (
    check_disk,
    disk_need,
    ensure_data,
    folder_bytes,
    layout_for,
    raw_partition_files,
    rules_file,
    state_bytes,
    window_dates,
    window_files,
    window_rows,
)
from pipelines.devtools.bench.machine import machine_info, machine_load
from pipelines.devtools.bench.runs import (
    copy_output,
    run_floor,
    run_peer,
    run_scenario,
    seed_from_scratch,
)
from pipelines.devtools.bench.scales import (
    DEFAULT_SEED,
    RUN_SCENARIOS,
    SCENARIOS,
    SKIPPABLE,
    START,
    Scale,
)
from pipelines.devtools.bench.summary import _median, _ratio, _scenario_summary, evaluate_targets
from pipelines.devtools.bench.windows import run_windows
from pipelines.errors import InputError
from pipelines.layout import manifest_path

JSON_SCHEMA_VERSION = 2  # 2: issue 19's targets, ray, peer, window runs, state size, --skip
RAY_ARGS = ("--executor", "ray", "--ray-address", "local")  # a new local Ray, whatever RAY_ADDRESS


def _skip_set(skip: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(skip)
    unknown = chosen - set(SKIPPABLE)
    if unknown:
        raise InputError(
            f"bench: --skip {', '.join(sorted(unknown))}: not a scenario; use "
            + ", ".join(SKIPPABLE)
        )
    return chosen


def _windows(scale: Scale, window_days: Sequence[int] | None) -> tuple[int, ...]:
    """The windows of the window runs: `--window-days`, or the scale's and twice it."""
    days = tuple(sorted(set(window_days or (scale.window_days, 2 * scale.window_days))))
    if len(days) < 2 or days[0] < 1:
        raise InputError("bench: --window-days needs at least two different windows of 1+ days")
    return days


def full_window_shards(order_rows: int) -> int:
    """The shard count expscore chooses when it first builds a state over a whole window of
    `order_rows` order versions (`pipelines.state`: about ORDERS_PER_SHARD each).

    The backfill is given it: its first date sees one day of data (nothing is generated before
    START), and the state would keep the shard count that one day suggests (1 instead of 2 at
    mid, 8 instead of 10 at M), unlike the from-scratch run and any state an operator builds
    over a full window. The nightly and Ray runs inherit it from the backfill's state.
    """
    return max(1, min(MAX_SHARDS, math.ceil(order_rows / ORDERS_PER_SHARD)))


def _ray_missing() -> str | None:
    """Why the ray scenario cannot run here, or None."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'expscore[ray]', or the dev extras)"
    return None


def run_bench(
    scale: Scale,
    work: Path,
    repeats: int = 3,
    backfill_repeats: int | None = None,
    seed: int = DEFAULT_SEED,
    echo: Any = print,
    limits: Limits = NO_LIMITS,
    disk_check: bool = True,
    skip: Iterable[str] = (),
    window_days: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Generate (or reuse) the data, measure every scenario `repeats` times, return the result.

    First, unless `disk_check` is off, refuse a scale the work folder's disk cannot hold.

    Each repeat starts the nightly run from a fresh copy of the backfill's output, so every
    repeat measures the same step even when a run keeps state under `--out`. `backfill_repeats`
    (default `repeats`) may be lower, since a backfill at M takes many times a nightly run; 0
    reuses the backfill output left by an earlier invocation. `skip` names scenarios not to
    run (`SKIPPABLE`); `window_days` the windows the window runs compare.

    A run that fails or passes a limit is recorded as failed and not repeated; the runs that
    start from the backfill's output are skipped when there is none.
    """
    backfill_repeats = repeats if backfill_repeats is None else backfill_repeats
    if repeats < 1 or backfill_repeats < 0:
        raise InputError("bench: --repeats must be at least 1 and --backfill-repeats at least 0")
    skip = _skip_set(skip)
    windows = () if "window" in skip else _windows(scale, window_days)
    work = work.resolve()
    load_at_start = machine_load()
    layout = layout_for(work, scale, seed)
    days_needed = max((scale.window_days, *windows)) + 1
    disk = disk_need(scale, layout, days_needed, windows, skip)
    if disk_check:
        check_disk(disk, scale, layout)
    generation = ensure_data(layout, scale, seed, echo, days_needed)
    rules = rules_file(layout, scale.window_days)

    backfill_dates = window_dates(
        START + dt.timedelta(days=scale.window_days - 1), scale.window_days
    )
    nightly_date = START + dt.timedelta(days=scale.window_days)
    nightly_window = window_dates(nightly_date, scale.window_days)
    nightly_files = window_files(layout.raw, nightly_window)
    nightly_rows = window_rows(nightly_files)
    backfill_rows = window_rows(window_files(layout.raw, backfill_dates))
    shards = full_window_shards(nightly_rows["orders"])
    backfill_args = [
        "backfill",
        f"--start={backfill_dates[0].isoformat()}",
        f"--end={backfill_dates[-1].isoformat()}",
        f"--shards={shards}",
    ]
    nightly_args = ["run", f"--date={nightly_date.isoformat()}"]

    day_files = window_files(layout.raw, [nightly_date])
    day_rows = window_rows(day_files)
    runs: dict[str, list[Measurement]] = {name: [] for name in SCENARIOS}
    backfill_out, nightly_out, scratch_out = (layout.out(s) for s in RUN_SCENARIOS)
    ray_out = layout.out("ray")
    if (
        backfill_repeats == 0
        and "backfill" not in skip
        and not manifest_path(backfill_out, backfill_dates[-1]).is_file()
    ):
        raise InputError(f"bench: --backfill-repeats 0 needs an earlier backfill in {backfill_out}")
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {name: "--skip" for name in SKIPPABLE if name in skip}
    if "ray" not in skipped and _ray_missing():
        skipped["ray"] = str(_ray_missing())
    if "backfill" in skip:
        for name in ("nightly", "scratch", "ray"):
            skipped.setdefault(name, "needs the backfill's output, and the backfill was skipped")
    elif backfill_repeats == 0:
        skipped["backfill"] = "--backfill-repeats 0: the output of an earlier one is reused"
    peer_rules = rules
    if "peer" not in skipped:
        try:
            bench_peer.read_rules(peer_rules)
        except bench_peer.PeerRulesError as exc:
            skipped["peer"] = f"the rules ask for what the peer does not compute: {exc}"

    def attempt(
        name: str,
        verb_args: list[str],
        out: Path,
        dates: list[dt.date],
        tag: str,
        the_rules: Path | None = rules,
    ) -> bool:
        try:
            measured = run_scenario(name, verb_args, layout, out, the_rules, dates, tag, limits)
        except ScenarioFailed as exc:
            runs.setdefault(name, []).append(exc.measurement)
            failures[name] = exc.reason
            echo(f"bench: {name} FAILED: {exc.reason}")
            return False
        runs.setdefault(name, []).append(measured)
        return True

    def wanted(name: str) -> bool:
        return name not in skipped and name not in failures

    state_after: dict[str, Any] = {}
    for i in range(repeats):
        tag = f"{i + 1}"
        echo(f"bench: repeat {tag}/{repeats}: floor ...")
        runs["floor"].append(run_floor(layout, nightly_files, tag, limits))
        runs["floor_day"].append(run_floor(layout, day_files, tag, limits, name="floor_day"))
        if i < backfill_repeats and wanted("backfill"):
            echo(f"bench: repeat {tag}/{repeats}: backfill of {len(backfill_dates)} days ...")
            shutil.rmtree(backfill_out, ignore_errors=True)
            attempt("backfill", backfill_args, backfill_out, backfill_dates, tag)
        if "backfill" in failures:
            for name in ("nightly", "scratch", "ray"):
                skipped.setdefault(name, "needs the backfill's output, and the backfill failed")
        if wanted("nightly"):
            echo(f"bench: repeat {tag}/{repeats}: nightly run of {nightly_date} ...")
            copy_output(backfill_out, nightly_out)
            if attempt("nightly", nightly_args, nightly_out, [nightly_date], tag):
                state_after["nightly"] = state_bytes(nightly_out)
        if wanted("scratch"):
            echo(f"bench: repeat {tag}/{repeats}: from-scratch run of {nightly_date} ...")
            seed_from_scratch(backfill_out, scratch_out, nightly_date - dt.timedelta(days=1))
            if attempt("scratch", nightly_args, scratch_out, [nightly_date], tag):
                state_after["scratch"] = state_bytes(scratch_out)
        if wanted("ray"):
            echo(f"bench: repeat {tag}/{repeats}: nightly run of {nightly_date} on Ray ...")
            copy_output(backfill_out, ray_out)
            attempt("ray", [*nightly_args, *RAY_ARGS], ray_out, [nightly_date], tag)
        if wanted("peer"):
            echo(f"bench: repeat {tag}/{repeats}: SQL peer for {nightly_date} ...")
            try:
                runs["peer"].append(
                    run_peer(
                        layout,
                        raw_partition_files(layout.raw, nightly_window),
                        nightly_date,
                        peer_rules,
                        tag,
                        limits,
                    )
                )
            except ScenarioFailed as exc:
                runs["peer"].append(exc.measurement)
                failures["peer"] = exc.reason
                echo(f"bench: peer FAILED: {exc.reason}")

    floor_s = _median([m.stages["query"] for m in runs["floor"]])
    total_nightly_rows = sum(nightly_rows.values())
    descriptions = {
        "floor": "DuckDB reads every spec column of the nightly window's raw files once",
        "floor_day": f"the same for the raw files of {nightly_date} alone",
        "backfill": f"expscore backfill {backfill_dates[0]}..{backfill_dates[-1]} into an empty "
        "output",
        "nightly": f"expscore run --date {nightly_date} on top of the backfill's output",
        "scratch": f"expscore run --date {nightly_date} into an output holding only the "
        f"published tables of {nightly_date - dt.timedelta(days=1)}",
        "ray": f"expscore run --date {nightly_date} {' '.join(RAY_ARGS)} on top of the "
        "backfill's output",
        "peer": f"plain DuckDB SQL recompute of {nightly_date} from the raw logs of its window "
        "(pipelines/devtools/bench_peer.py)",
    }
    rows_of = {"backfill": sum(backfill_rows.values()), "floor_day": sum(day_rows.values())}
    scenarios: dict[str, dict[str, Any]] = {}
    for name in SCENARIOS:
        scenarios[name] = _scenario_summary(
            name,
            runs[name],
            rows_of.get(name, total_nightly_rows),
            floor_s,
            descriptions[name],
            failures,
            skipped,
        )
    scenarios["floor"]["query_s"] = floor_s
    scenarios["floor_day"]["query_s"] = _median([m.stages["query"] for m in runs["floor_day"]])

    def wall(name: str) -> float | None:
        return scenarios[name].get("wall_s")

    if wall("nightly") and wall("scratch"):
        echo("bench: comparing the nightly and from-scratch tables ...")
        identity = compare_outputs(nightly_out, scratch_out, nightly_date)
        speedup = _ratio(wall("scratch"), wall("nightly"))
    else:
        identity, speedup = {"identical": None, "tables": {}}, None
    ray_vs_local: dict[str, Any] = {"ratio": None, "identical": None, "tables": {}}
    if wall("ray") and wall("nightly"):
        echo("bench: comparing the Ray and local nightly tables ...")
        ray_vs_local = {
            "ratio": _ratio(wall("ray"), wall("nightly")),
            **compare_outputs(nightly_out, ray_out, nightly_date),
        }
    ray_bytes = folder_bytes(ray_out)
    shutil.rmtree(ray_out, ignore_errors=True)
    peer: dict[str, Any] = {
        "computes": list(bench_peer.COMPUTES),
        "skips": list(bench_peer.SKIPS),
        "nightly_to_peer": _ratio(wall("nightly"), wall("peer")),
        "scratch_to_peer": _ratio(wall("scratch"), wall("peer")),
        "compared_with": None,
        "agreement": None,
    }
    published = next(
        (
            (name, out)
            for name, out in (("nightly", nightly_out), ("scratch", scratch_out))
            if wall(name)
        ),
        None,
    )
    if wall("peer") and published:
        echo(f"bench: comparing the SQL peer's tables with the {published[0]} run's ...")
        peer["compared_with"] = published[0]
        peer["agreement"] = compare_peer(layout.out("peer"), published[1], nightly_date)

    window_result = run_windows(layout, scale, windows, repeats, limits, echo, failures)
    scenarios.update(window_result.pop("scenarios"))
    result: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(), "at_start": load_at_start},
        "scale": {
            **asdict(scale),
            "days_generated": generation["params"]["days"],
            "start": START.isoformat(),
            "seed": seed,
            "raw_bytes": generation.get("raw_bytes"),
            "generation_seconds": generation.get("seconds"),
            "generation_reused": generation.get("reused"),
        },
        "work": str(layout.root),
        "repeats": repeats,
        "backfill_repeats": backfill_repeats,
        "skipped": skipped,
        "floor_seconds": floor_s,
        "floor_basis": "in-process DuckDB query time of the floor (median); every ratio_to_floor "
        "divides by it (a window run's by its own window's floor)",
        "window": {
            "backfill": [backfill_dates[0].isoformat(), backfill_dates[-1].isoformat()],
            "nightly_date": nightly_date.isoformat(),
            "nightly_window": [nightly_window[0].isoformat(), nightly_window[-1].isoformat()],
            "rows": nightly_rows,
            "rows_total": total_nightly_rows,
            "new_day_rows": day_rows,
            "backfill_rows_total": sum(backfill_rows.values()),
            "shards": shards,
        },
        "scenarios": scenarios,
        "nightly_vs_scratch": {"speedup": speedup, **identity},
        "ray_vs_local": ray_vs_local,
        "peer": peer,
        "windows": window_result,
        "state": state_after,
        "limits": asdict(limits),
        "disk_bytes": {
            "raw": generation.get("raw_bytes"),
            **{name: folder_bytes(layout.out(name)) for name in RUN_SCENARIOS},
            "ray": ray_bytes,
            **{
                f"window{w}": leg.get("output_bytes")
                for w, leg in window_result.get("legs", {}).items()
            },
        },
        "disk_at_start": {**asdict(disk), "checked": disk_check},
    }
    result["notes"] = [
        "every run passes --force so that a gate tripped by synthetic data cannot stop the "
        "backfill; the gates are still evaluated (see each scenario's statuses)",
        "scratch starts from the previous day's published tables only: into a truly empty output "
        "the labels (hysteresis) and shop weights (daily clamp) of the date would differ by spec",
        "rows and rows_per_s count the raw rows of the scenario's window from Parquet footers",
        "disk_bytes are apparent sizes: the nightly output hard-links the backfill's published "
        "partitions (a run replaces a partition, never writes into one); state is <out>/.state "
        "after the run, its exchange folder left out",
        f"the backfill builds its state with --shards {shards}, the count expscore chooses for a "
        "whole window (its first date sees one day of data); nightly and ray keep it, scratch "
        "and the window runs choose it themselves",
        "peak_rss_bytes is the child's own (exact); peak_tree_rss_bytes the sampled sum over "
        "its process tree, which with --executor ray includes the Ray workers",
        "the peer leaves out what needs D-1 (labels, the clamped shop weight): see peer.skips",
        *([scale.note] if scale.note else []),
    ]
    result["targets"] = evaluate_targets(scale.name, result)
    return result
