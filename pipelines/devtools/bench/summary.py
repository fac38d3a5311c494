"""From runs to figures: a scenario's medians over its repeats, throughput and ratios to the
floor, and issue 19's targets with the measured value and a verdict."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from pipelines.devtools.bench.children import Measurement
from pipelines.devtools.bench.scales import GIB, TARGETS

STAGE_ORDER = ("state", "score", "publish")  # known stages first; others follow by name


def _median(values: Sequence[float]) -> float:
    return round(float(statistics.median(values)), 4)


def _stage_names(runs: Sequence[Measurement]) -> list[str]:
    names = {s for m in runs for s in m.stages}
    return [s for s in STAGE_ORDER if s in names] + sorted(names - set(STAGE_ORDER))


def summarise(
    runs: Sequence[Measurement],
    rows: int,
    floor_s: float | None,
    description: str,
    failure: str | None = None,
) -> dict[str, Any]:
    """Medians over the repeats, throughput and ratios to the floor; the raw runs stay too.

    A failed scenario gets no medians (a figure from the repeats that happened to pass would
    flatter it): its `failed` reason and its runs, the failing one included, say what happened.
    """
    summary: dict[str, Any] = {"description": description, "rows": rows, "failed": failure}
    if failure is not None or not runs:
        return {**summary, "runs": [asdict(m) for m in runs]}
    wall = _median([m.wall_s for m in runs])
    stages = {}
    for stage in _stage_names(runs):
        seconds = _median([m.stages.get(stage, 0.0) for m in runs])
        stages[stage] = {
            "seconds": seconds,
            "rows_per_s": round(rows / seconds) if seconds > 0 else None,
            "ratio_to_floor": round(seconds / floor_s, 2) if floor_s else None,
        }
    return {
        **summary,
        "wall_s": wall,
        "cpu_s": _median([m.cpu_s for m in runs]),
        "peak_rss_bytes": int(statistics.median([m.peak_rss_bytes for m in runs])),
        "rows_per_s": round(rows / wall) if wall > 0 else None,
        "ratio_to_floor": round(wall / floor_s, 2) if floor_s else None,
        "stages": stages,
        # wall time outside the timed stages: interpreter start, imports, rules, lock, manifest
        "other_s": _median([m.wall_s - sum(m.stages.values()) for m in runs]),
        "runs": [asdict(m) for m in runs],
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 4) if numerator and denominator else None


def target_metrics(result: Mapping[str, Any]) -> dict[str, float | bool | None]:
    """Every figure a target compares, from the result (None where it was not measured)."""
    scenarios = result["scenarios"]

    def get(scenario: str, key: str) -> Any:
        return scenarios.get(scenario, {}).get(key)

    def gib(scenario: str) -> float | None:
        rss = get(scenario, "peak_rss_bytes")
        return None if rss is None else round(rss / GIB, 3)

    state = result.get("state", {}).get("nightly")
    windows = result.get("windows", {}).get("legs", {})
    return {
        "nightly_wall_s": get("nightly", "wall_s"),
        "nightly_peak_rss_gib": gib("nightly"),
        "scratch_wall_s": get("scratch", "wall_s"),
        "scratch_peak_rss_gib": gib("scratch"),
        "backfill_wall_s": get("backfill", "wall_s"),
        "nightly_state_gb": None if not state else round(state["bytes"] / 1e9, 3),
        "nightly_identical": result["nightly_vs_scratch"].get("identical"),
        "window_60_to_30": _ratio(
            windows.get("60", {}).get("nightly_wall_s"), windows.get("30", {}).get("nightly_wall_s")
        ),
        "ray_to_local": result.get("ray_vs_local", {}).get("ratio"),
        "ray_identical": result.get("ray_vs_local", {}).get("identical"),
        "nightly_to_peer": result.get("peer", {}).get("nightly_to_peer"),
        "scratch_to_peer": result.get("peer", {}).get("scratch_to_peer"),
    }


def evaluate_targets(scale: str, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for this scale, each with the measured value and pass/fail.

    `passed` is false when the figure misses its limit or a run it comes from failed (killed
    past the memory limit, say), and null when such a run was skipped or not measured.
    """
    metrics = target_metrics(result)
    evaluated = []
    for target in TARGETS:
        if target.scale != scale:
            continue
        sources = [result["scenarios"].get(name) for name in target.scenarios]
        value = metrics[target.metric]
        if any(s is not None and s.get("failed") for s in sources):
            passed: bool | None = False
        elif value is None or any(s is None or s.get("skipped") for s in sources):
            passed = None
        elif isinstance(target.limit, bool):
            passed = value == target.limit
        else:
            passed = value <= target.limit if target.at_most else value >= target.limit
        evaluated.append({**asdict(target), "value": value, "passed": passed})
    return evaluated


def _scenario_summary(
    name: str,
    measured: Sequence[Measurement],
    rows: int,
    floor_s: float | None,
    description: str,
    failures: Mapping[str, str],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """One scenario's JSON: skipped with the reason, or its medians (or failure) and runs."""
    if name in skipped and not measured:
        return {"description": description, "skipped": skipped[name]}
    summary = summarise(measured, rows, floor_s, description, failures.get(name))
    passed = [m for m in measured if m.ok and "statuses" in m.extra]
    if passed:
        summary["statuses"] = sorted({s for m in passed for s in m.extra["statuses"]})
    if (name == "backfill" or name.endswith("_prep")) and passed:
        summary["per_day_last_repeat"] = passed[-1].extra["per_day"]
    if name in failures and measured:  # how far the failed run got (dates it published)
        summary["per_day_published"] = measured[-1].extra.get("per_day_published", [])
    return summary
