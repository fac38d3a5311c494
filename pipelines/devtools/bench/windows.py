"""The window-length runs: the nightly run of one date under each `--window-days`, each on
the output of a short backfill, divided by the smallest window's."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from typing import Any

from pipelines.devtools.bench.children import Limits, Measurement, ScenarioFailed
from pipelines.devtools.bench.data import (
    Layout,
    folder_bytes,
    rules_file,
    state_bytes,
    window_dates,
    window_files,
    window_rows,
)
from pipelines.devtools.bench.runs import copy_output, run_floor, run_scenario
from pipelines.devtools.bench.scales import START, Scale
from pipelines.devtools.bench.summary import _median, _ratio, _scenario_summary

# Nights a window run's output has behind it: a backfill of WINDOW_WARMUP_NIGHTS + 1 dates into
# an empty output (the first date from scratch) before the measured night. A state's order files
# take a delta per night and are compacted past 4 (pipelines/state/shard.py), so three nights
# give it the shape of a long-running state without a backfill of the whole window.
WINDOW_WARMUP_NIGHTS = 3


def run_windows(
    layout: Layout,
    scale: Scale,
    windows: Sequence[int],
    repeats: int,
    limits: Limits,
    echo: Any,
    failures: dict[str, str],
) -> dict[str, Any]:
    """The nightly run of one date under each window length of `windows`.

    The date is the day after the longest window's data (START + max(windows)), the same for
    every W, so the runs differ in their window alone. Per W: the floor of that window, a
    backfill of the WINDOW_WARMUP_NIGHTS + 1 dates before the date into an empty output (its
    first date from scratch, over a whole window) under `window_days = W`, then `repeats`
    nightly runs of the date on copies of it (the last on the output itself). Each W's nightly
    is divided by the smallest W's; the outputs are deleted once measured.
    """
    if not windows:
        return {"scenarios": {}, "legs": {}, "days": []}
    day = START + dt.timedelta(days=max(windows))
    prep_dates = window_dates(day - dt.timedelta(days=1), WINDOW_WARMUP_NIGHTS + 1)
    scenarios: dict[str, dict[str, Any]] = {}
    legs: dict[str, dict[str, Any]] = {}
    for w in windows:
        rules = rules_file(layout, w)
        files = window_files(layout.raw, window_dates(day, w))
        rows = window_rows(files)
        prep_name, night_name = f"window{w}_prep", f"window{w}_nightly"
        prep_out, night_out = layout.out(prep_name), layout.out(night_name)
        floors = []
        for i in range(repeats):
            floors.append(run_floor(layout, files, str(i + 1), limits, name=f"window{w}_floor"))
        floor_s = _median([m.stages["query"] for m in floors])
        echo(f"bench: window {w} days: backfill {prep_dates[0]}..{prep_dates[-1]} ...")
        shutil.rmtree(prep_out, ignore_errors=True)
        prep_args = [
            "backfill",
            f"--start={prep_dates[0].isoformat()}",
            f"--end={prep_dates[-1].isoformat()}",
        ]
        measured: dict[str, list[Measurement]] = {prep_name: [], night_name: []}
        try:
            measured[prep_name].append(
                run_scenario(prep_name, prep_args, layout, prep_out, rules, prep_dates, "1", limits)
            )
        except ScenarioFailed as exc:
            measured[prep_name].append(exc.measurement)
            failures[prep_name] = exc.reason
            echo(f"bench: {prep_name} FAILED: {exc.reason}")
        state = None
        output_bytes = folder_bytes(prep_out)
        for i in range(repeats if prep_name not in failures else 0):
            echo(f"bench: window {w} days: nightly run of {day} ({i + 1}/{repeats}) ...")
            if i == repeats - 1:  # the last night may consume the prep's output
                shutil.rmtree(night_out, ignore_errors=True)
                prep_out.rename(night_out)
            else:
                copy_output(prep_out, night_out)
            try:
                measured[night_name].append(
                    run_scenario(
                        night_name,
                        ["run", f"--date={day.isoformat()}"],
                        layout,
                        night_out,
                        rules,
                        [day],
                        str(i + 1),
                        limits,
                    )
                )
            except ScenarioFailed as exc:
                measured[night_name].append(exc.measurement)
                failures[night_name] = exc.reason
                echo(f"bench: {night_name} FAILED: {exc.reason}")
                break
            state = state_bytes(night_out)
            output_bytes = max(output_bytes, folder_bytes(night_out))
        shutil.rmtree(prep_out, ignore_errors=True)
        shutil.rmtree(night_out, ignore_errors=True)
        skipped = (
            {night_name: "needs the window's backfill, and it failed"}
            if (prep_name in failures)
            else {}
        )
        for name, description, n_rows in (
            (
                prep_name,
                f"expscore backfill {prep_dates[0]}..{prep_dates[-1]} under window_days = {w} "
                "into an empty output (the first date from scratch)",
                sum(rows.values()),
            ),
            (
                night_name,
                f"expscore run --date {day} under window_days = {w} on top of that backfill",
                sum(rows.values()),
            ),
        ):
            scenarios[name] = _scenario_summary(
                name, measured[name], n_rows, floor_s, description, failures, skipped
            )
        nights = [m for m in measured[night_name] if m.ok]
        legs[str(w)] = {
            "floor_s": floor_s,
            "rows_total": sum(rows.values()),
            "nightly_wall_s": scenarios[night_name].get("wall_s"),
            "shards": (nights[-1].extra["per_day"][-1].get("execution") or {}).get("shards")
            if nights
            else None,
            "state": state,
            "output_bytes": output_bytes,
        }
    smallest = legs[str(min(windows))]["nightly_wall_s"]
    for leg in legs.values():
        leg["nightly_to_smallest"] = _ratio(leg["nightly_wall_s"], smallest)
    return {
        "scenarios": scenarios,
        "days": list(windows),
        "date": day.isoformat(),
        "warmup_nights": WINDOW_WARMUP_NIGHTS,
        "legs": legs,
    }
