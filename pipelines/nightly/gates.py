"""Quality gates: checks between scoring and publishing that can hold a run (exit code 3).

The traffic-weight table steers real buyers, so a feed that arrived half-empty, a feed full of
garbage, or a night on which a fifth of all shops changed band is held for a human to look at,
and yesterday's tables stay published. `--force` publishes anyway and the manifest says so.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import polars as pl

from scoring.contract import LOGS
from scoring.rules import GateRules

# The logs whose row counts are gated: an optional log (appeals, 13.1) may have no rows on any
# day, so a day without any is no sign of lost input. Its quarantine share is gated like the rest.
COUNTED_LOGS = [name for name, schema in LOGS.items() if not schema.optional]


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: float | None
    threshold: float
    message: str
    log: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def rows_per_day(files: list[dict], log: str) -> dict[dt.date, int]:
    """Rows per partition date of one log, from the loader's file list (footer counts)."""
    counts: dict[dt.date, int] = {}
    for entry in files:
        if entry["log"] == log:
            day = dt.date.fromisoformat(entry["dt"])
            counts[day] = counts.get(day, 0) + entry["rows"]
    return counts


def row_count_gates(
    files: list[dict],
    run_date: dt.date,
    gates: GateRules,
    recorded: Mapping[dt.date, Mapping[str, int]] | None = None,
) -> list[GateResult]:
    """Today's rows of each log against half the median of the trailing days.

    A trailing day's rows are those its own published run recorded (`recorded`, from its
    manifest) where there is one, so that a raw folder that lost its history cannot vouch for
    itself; the raw folder's count (0 when missing) stands in for a day never run.
    """
    recorded = recorded or {}
    results = []
    for log in COUNTED_LOGS:
        counts = rows_per_day(files, log)
        trailing = [
            recorded[day].get(log, 0) if day in recorded else counts.get(day, 0)
            for day in (run_date - dt.timedelta(days=n) for n in range(1, gates.trailing_days + 1))
        ]
        median = statistics.median(trailing)
        today = counts.get(run_date, 0)
        floor = gates.min_rows_vs_median * median
        passed = median == 0 or today >= floor
        results.append(
            GateResult(
                gate="row_count",
                log=log,
                passed=passed,
                value=float(today),
                threshold=floor,
                message=(
                    f"{log}: {today} rows on {run_date}, "
                    f"{'at least' if passed else 'below'} {gates.min_rows_vs_median:g} x the "
                    f"{gates.trailing_days}-day median of {median:g}"
                ),
            )
        )
    return results


def min_rows_gates(files: list[dict], run_date: dt.date, gates: GateRules) -> list[GateResult]:
    """Today's rows of each log the rules name against the fewest its feed may deliver."""
    results = []
    for log, minimum in gates.min_rows.items():
        today = rows_per_day(files, log).get(run_date, 0)
        passed = today >= minimum
        results.append(
            GateResult(
                gate="min_rows",
                log=log,
                passed=passed,
                value=float(today),
                threshold=float(minimum),
                message=f"{log}: {today} rows on {run_date}, "
                f"{'at least' if passed else 'below'} the minimum of {minimum} (gates.min_rows)",
            )
        )
    return results


def window_rows_gates(
    files: list[dict], previous: Mapping[str, int] | None, gates: GateRules
) -> list[GateResult]:
    """The window's rows of each log against the window the run of D-1 read (its manifest).

    A night moves the window by one day, so its rows barely change; a window with far fewer
    rows than the night before lost partitions or files upstream.
    """
    if previous is None:
        return []
    results = []
    for log in COUNTED_LOGS:
        now = sum(rows_per_day(files, log).values())
        before = previous.get(log, 0)
        floor = gates.min_rows_vs_median * before
        passed = now >= floor
        results.append(
            GateResult(
                gate="window_rows",
                log=log,
                passed=passed,
                value=float(now),
                threshold=floor,
                message=(
                    f"{log}: {now} rows in the window, {'at least' if passed else 'below'} "
                    f"{gates.min_rows_vs_median:g} x the {before} of the day before's window"
                ),
            )
        )
    return results


def quarantine_gates(
    files: list[dict], quarantine: pl.DataFrame, run_date: dt.date, gates: GateRules
) -> list[GateResult]:
    """Share of today's rows of each log that were quarantined."""
    rejected = dict(quarantine.filter(pl.col("source_dt") == run_date).group_by("log").len().rows())
    results = []
    for log in LOGS:
        today = rows_per_day(files, log).get(run_date, 0)
        share = rejected.get(log, 0) / today if today else 0.0
        passed = share <= gates.max_quarantine_share
        results.append(
            GateResult(
                gate="quarantine_share",
                log=log,
                passed=passed,
                value=share,
                threshold=gates.max_quarantine_share,
                message=(
                    f"{log}: {rejected.get(log, 0)} of {today} rows of {run_date} quarantined "
                    f"({share:.2%}, limit {gates.max_quarantine_share:.2%})"
                ),
            )
        )
    return results


def band_change_share(today: pl.DataFrame, previous: pl.DataFrame) -> tuple[int, int]:
    """(changed, compared): shops of D-1 and scored on at least one of the two days.

    A shop of D-1 that has no row on D counts as changed: a feed that lost shops must not pass
    because only the shops left are compared. A shop new on D is not compared.
    """
    both = previous.select("shop_id", previous_band="band", previous_status="status").join(
        today.select("shop_id", "band", "status"), on="shop_id", how="left"
    )
    compared = both.filter((pl.col("status") == "scored") | (pl.col("previous_status") == "scored"))
    changed = compared.filter(pl.col("band").ne_missing(pl.col("previous_band")))
    return changed.height, compared.height


def band_change_gate(
    today: pl.DataFrame, previous: pl.DataFrame | None, gates: GateRules
) -> list[GateResult]:
    if previous is None:
        return []
    changed, compared = band_change_share(today, previous)
    share = changed / compared if compared else 0.0
    passed = share <= gates.max_band_change_share
    return [
        GateResult(
            gate="band_change_share",
            passed=passed,
            value=share,
            threshold=gates.max_band_change_share,
            message=(
                f"{changed} of {compared} scored shops changed band since the day before "
                f"({share:.1%}, limit {gates.max_band_change_share:.0%})"
            ),
        )
    ]
