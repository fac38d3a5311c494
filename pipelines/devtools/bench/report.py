"""What a benchmark leaves: the JSON result, and the short table a person reads (one row per
scenario, the comparisons, each target with its figure and verdict)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.devtools import bench_peer
from pipelines.devtools.bench.scales import GIB, MIB, TARGETS
from pipelines.devtools.bench.summary import STAGE_ORDER

OTHER_WORK_CPUS = 0.5  # CPUs busy at the end of a benchmark, beyond which other work competed


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def _fmt_rate(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r / 1e6:.2f}M/s" if r >= 1e6 else f"{r / 1e3:.1f}k/s"


def busy_warning(machine: Mapping[str, Any]) -> str | None:
    """A warning when other work competed for the machine, or less than half its memory was
    available, at the start or the end of the run.

    At the start, a load average above the usable CPUs (work that ran in the minute before);
    at the end, more than `OTHER_WORK_CPUS` CPUs busy while the harness waits, since the load
    average then still counts the harness's own last runs.
    """
    cpus = machine.get("cpus_usable") or 1
    total = machine.get("memory_bytes")
    for when, state in (("start", machine.get("at_start", {})), ("end", machine)):
        load = (state.get("load_average") or [0.0])[0]
        busy = state.get("cpus_busy")
        available = state.get("memory_available_bytes")
        low_memory = bool(total and available is not None and available < total / 2)
        loaded = load > cpus if when == "start" else (busy or 0.0) > OTHER_WORK_CPUS
        if loaded or low_memory:
            what = f"load {load:.1f}" if when == "start" else f"{busy or 0.0:.1f} CPUs busy"
            return (
                f"WARNING: the machine was busy at the {when} ({what} on {cpus} CPUs, "
                f"{_fmt_bytes(available)} memory available): the figures are not representative"
            )
    return None


def format_table(result: Mapping[str, Any]) -> str:
    """A few lines a person reads: one row per scenario, stage seconds with their x-floor ratio,
    then what the comparisons found and each target with its figure."""
    scale, machine, window = result["scale"], result["machine"], result["window"]
    scenarios = result["scenarios"]
    own_stages = ("floor", "floor_day", "peer")  # stages of their own, told on their own line
    seen = {
        s for name, sc in scenarios.items() if name not in own_stages for s in sc.get("stages", {})
    }
    stages = [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))
    memory = machine["memory_bytes"]
    lines = [
        f"expscore bench {scale['name']}: {scale['shops']:,} shops, "
        f"{scale['orders_per_day']:,} orders/day, window {scale['window_days']} days, "
        f"seed {scale['seed']}; median of {result['repeats']} on {machine['cpus_usable']} CPUs, "
        f"{_fmt_bytes(memory)}",
        f"nightly window {window['nightly_window'][0]}..{window['nightly_window'][1]}: "
        f"{window['rows_total']:,} raw rows ("
        + ", ".join(f"{log} {n:,}" for log, n in window["rows"].items())
        + f"); {window['shards']} shard(s)",
        "",
    ]
    width = max(len(name) for name in scenarios)
    header = f"{'scenario':<{width}} {'wall s':>8} {'cpu s':>8} {'peak RSS':>10} {'rows/s':>9} "
    header += f"{'x floor':>8}" + "".join(f" {s + ' s (x floor)':>20}" for s in stages)
    header += f" {'other s':>8}"
    lines.append(header)
    for name, sc in scenarios.items():
        if sc.get("skipped"):
            lines.append(f"{name:<{width}} skipped: {sc['skipped']}")
            continue
        if sc.get("failed"):
            last = sc["runs"][-1]
            done = len(sc.get("per_day_published", []))
            lines.append(
                f"{name:<{width}} FAILED after {last['wall_s']:.0f} s at "
                f"{_fmt_bytes(last['peak_rss_bytes'])} ({done} dates published): {sc['failed']}"
            )
            continue
        if "wall_s" not in sc:  # not run this time (an earlier backfill reused)
            continue
        rss = sc["peak_rss_bytes"]
        tree = max((r.get("peak_tree_rss_bytes") or 0) for r in sc["runs"])
        shown = _fmt_bytes(max(rss, tree)) + ("*" if tree > 1.25 * rss else "")
        row = (
            f"{name:<{width}} {sc['wall_s']:>8.2f} {sc['cpu_s']:>8.2f} "
            f"{shown:>10} {_fmt_rate(sc['rows_per_s']):>9} "
            f"{sc['ratio_to_floor']:>7.1f}x"
        )
        for stage in stages:
            st = sc.get("stages", {}).get(stage) if name not in own_stages else None
            cell = "-" if st is None else f"{st['seconds']:.2f} ({st['ratio_to_floor']:.1f}x)"
            row += f" {cell:>20}"
        lines.append(row + f" {sc['other_s']:>8.2f}")
    lines.append("")
    lines += _comparison_lines(result)
    busy = busy_warning(machine)
    if busy:
        lines.append(busy)
    if result["targets"]:
        lines.append(f"targets of issue 19 ({scale['name']}):")
        for t in result["targets"]:
            verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["passed"]]
            if isinstance(t["limit"], bool):
                figure = "not measured" if t["value"] is None else f"{t['value']}"
                limit = "must be true"
            else:
                figure = "not measured" if t["value"] is None else f"{t['value']:.3g} {t['unit']}"
                limit = f"{'<=' if t['at_most'] else '>='} {t['limit']:g} {t['unit']}"
            lines.append(f"  {verdict:<4} {t['description']}: {figure} ({limit})")
    else:
        scales = sorted({t.scale for t in TARGETS})
        lines.append(
            f"targets: none at scale {scale['name']} (issue 19 sets them for "
            + " and ".join(scales)
            + ")"
        )
    return "\n".join(lines)


def _comparison_lines(result: Mapping[str, Any]) -> list[str]:
    """The floor, the identity checks, the state's size, the peer and the window runs."""
    scenarios = result["scenarios"]
    floor = scenarios["floor"]
    lines = [
        f"floor: DuckDB query {floor['query_s']:.2f} s (process {floor['wall_s']:.2f} s), "
        f"{scenarios['floor_day']['query_s']:.2f} s for the new day alone (floor_day); "
        "x floor = seconds / floor query seconds; other = wall outside the manifest's stages "
        "(process start, imports, lock, manifest); * = peak RSS of the process tree (workers)",
    ]
    comparison = result["nightly_vs_scratch"]
    if comparison["speedup"] is None:
        lines.append("nightly vs from scratch: not compared (a run failed or was skipped)")
    else:
        lines.append(
            f"nightly vs from scratch: {comparison['speedup']:.2f}x faster; tables identical: "
            + _identical_text(comparison)
        )
    state = result.get("state", {}).get("nightly")
    if state:
        parts = sorted(state["by_table"].items(), key=lambda kv: -kv[1])[:4]
        lines.append(
            f"state on disk after the night: {_fmt_si(state['bytes'])} ("
            + ", ".join(f"{table} {_fmt_si(size)}" for table, size in parts)
            + ")"
        )
    ray = result.get("ray_vs_local", {})
    if ray.get("ratio") is not None:
        lines.append(
            f"ray vs local nightly: {ray['ratio']:.2f}x the local wall; tables identical: "
            + _identical_text(ray)
        )
    peer = result.get("peer", {})
    peer_scenario = scenarios.get("peer", {})
    if peer_scenario.get("wall_s"):
        steps = ", ".join(
            f"{step} {peer_scenario['stages'][step]['seconds']:.2f} s"
            for step in bench_peer.STEPS
            if step in peer_scenario["stages"]
        )
        text = f"SQL peer: {peer_scenario['wall_s']:.2f} s ({steps})"
        agreement = peer.get("agreement")
        if agreement:
            shops = agreement["tables"]["shop_scores"]
            items = agreement["tables"]["item_scores"]
            text += (
                f"; vs the {peer['compared_with']} tables (within {agreement['tolerance']:g}): "
                f"score {_share(agreement['score_agree_share'])} of "
                f"{shops['rows']['expscore']:,} shops (max diff "
                f"{_fmt_diff(agreement['score_max_abs_diff'])}), pxi "
                f"{_share(agreement['pxi_agree_share'])} of {items['rows']['expscore']:,} items, "
                f"every compared column: {'yes' if agreement['all_agree'] else 'NO'}"
            )
        ratios = [
            f"{what} {peer[key]:.2f}x the peer"
            for what, key in (("nightly", "nightly_to_peer"), ("from scratch", "scratch_to_peer"))
            if peer.get(key) is not None
        ]
        lines.append(text + ("; " + ", ".join(ratios) if ratios else ""))
    windows = result.get("windows", {})
    legs = windows.get("legs", {})
    if legs:
        figures = ", ".join(
            f"{w} days {leg['nightly_wall_s']:.2f} s"
            + (f" ({leg['nightly_to_smallest']:.2f}x)" if leg.get("nightly_to_smallest") else "")
            + (f", {leg['shards']} shard(s)" if leg.get("shards") else "")
            + (f", state {_fmt_si(leg['state']['bytes'])}" if leg.get("state") else "")
            for w, leg in legs.items()
            if leg.get("nightly_wall_s")
        )
        lines.append(
            f"window lengths, nightly of {windows['date']} after {windows['warmup_nights']} "
            f"nights: {figures or 'not measured (a run failed)'}"
        )
    skipped = result.get("skipped", {})
    if skipped:
        lines.append("skipped: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()))
    return lines


def _identical_text(comparison: Mapping[str, Any]) -> str:
    differing = [t for t, v in comparison["tables"].items() if not v["identical"]]
    return "yes" if comparison["identical"] else "NO (" + ", ".join(differing) + ")"


def _fmt_si(n: int) -> str:
    """Bytes in the decimal units the state target is set in (GB), MB below 0.1 GB."""
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _fmt_diff(diff: float | None) -> str:
    return "-" if diff is None else f"{diff:.1e}"


def write_json(result: Mapping[str, Any], path: Path) -> None:
    """The result as indented JSON at `path` (its folder created if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
