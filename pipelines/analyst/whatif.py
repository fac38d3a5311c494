"""The what-if (`expscore whatif`): the impact of a candidate rules file on one date, before it
goes live.

Both rule sets score the same inputs through the one implementation of the rules
(`scoring.daily.score_facts`); when they share a time zone and window, the facts are loaded and
computed once and scored twice. Both sides start from the same labels and weights published for
D-1 under `--out`, which is only read: the what-if publishes nothing and writes only the report
files it is asked for. The comparison itself is `scoring.analysis.whatif` (pure); this module
scores both sides and writes the report files, `whatif_format` renders the terminal summary and
the JSON, `whatif_html` the HTML page, and the command is `pipelines/cli/whatif.py`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.analyst.whatif_format import report_json
from pipelines.analyst.whatif_html import report_html
from pipelines.config import shipped_rules_bytes
from pipelines.errors import InputError
from pipelines.ingest.load import latest_partition_date
from pipelines.layout import partition_dir
from pipelines.nightly.publish import write_json_atomic, write_text_atomic
from pipelines.nightly.run import load_rules, previous_outputs
from pipelines.state import StateOptions, window_facts
from scoring.analysis.whatif import (
    TOP_MOVERS,
    migration_bands,
    rules_diff,
    same_window,
    whatif_frames,
)
from scoring.daily import DayFacts, rules_window, score_facts
from scoring.rules import Rules
from scoring.window import Window


@dataclass
class WhatIfReport:
    """Everything the text, HTML and JSON renderings need (all frames collected)."""

    run_date: dt.date
    raw: Path
    out: Path
    base: Rules
    new: Rules
    facts_shared: bool
    notes: list[str]
    frames: dict[str, pl.DataFrame]
    rules_changes: pl.DataFrame
    file_diff: list[str]
    bands: tuple[str, ...]
    written: list[Path] = field(default_factory=list)

    @property
    def identical_rules(self) -> bool:
        return self.base == self.new


# --------------------------------------------------------------------------------------------
# scoring both sides


def _rules_text(path: Path | None) -> str:
    """The text of a rules file (for the file diff); `load_rules` has already validated it."""
    if path is None:
        return shipped_rules_bytes().decode("utf-8")
    return Path(path).read_text("utf-8")


def _facts(raw: Path, window: Window, work: Path) -> DayFacts:
    """The window's facts as a nightly run computes them, from a state built in `work`.

    The facts are two small tables (per-shop sums, per-item counts), already collected, so
    scoring them under several rule sets does not recompute them.
    """
    return window_facts(raw, window, str(work), StateOptions(keep=False)).facts


def score_both(
    raw: Path, out: Path, base: Rules, new: Rules, run_date: dt.date
) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], bool]:
    """The six tables of `run_date` under each rule set, and whether the facts were shared.

    Facts depend on the window only (time zone and length), so they are shared exactly when
    `same_window`; otherwise each side loads and computes its own.
    """
    history = previous_outputs(out, run_date)
    previous = (history.labels, history.weights)
    shared = same_window(base, new)
    with tempfile.TemporaryDirectory(prefix="expscore-whatif-") as work:
        base_facts = _facts(raw, rules_window(base, run_date), Path(work) / "base")
        new_facts = (
            base_facts if shared else _facts(raw, rules_window(new, run_date), Path(work) / "new")
        )
    old_lazy = score_facts(base_facts, base, *previous)
    new_lazy = score_facts(new_facts, new, *previous)
    names = list(old_lazy)
    collected = pl.collect_all([*old_lazy.values(), *new_lazy.values()])
    old = dict(zip(names, collected[: len(names)], strict=True))
    new_tables = dict(zip(names, collected[len(names) :], strict=True))
    return old, new_tables, shared


def _notes(report_out: Path, run_date: dt.date, base: Rules, new: Rules, shared: bool) -> list[str]:
    """What an operator must know to read the numbers right."""
    notes = []
    if shared:
        notes.append(
            "Facts (orders, refunds, sessions, per-shop sums) were computed once and scored "
            "under both rule sets (same time zone, window and exemptions)."
        )
    else:
        notes.append(
            f"The rule sets count different rows (base: {base.timezone}, {base.window_days} "
            f"days, {len(base.exemptions)} exemptions; new: {new.timezone}, "
            f"{new.window_days} days, {len(new.exemptions)} exemptions), so the facts were "
            "computed separately for each; a shop present on one side only shows as 'absent'."
        )
    day = run_date - dt.timedelta(days=1)
    if partition_dir(report_out, "shop_traffic_weights", day).is_dir():
        notes.append(
            f"Both sides start from the labels and weights published for {day} under "
            f"{report_out} (hysteresis and the daily weight clamp apply)."
        )
    else:
        notes.append(
            f"Nothing is published for {day} under {report_out}: both sides start with no "
            "labels held and unclamped weights, as a first run would."
        )
    return notes


def run_whatif(
    raw: Path,
    out: Path,
    rules_path: Path,
    base_path: Path | None = None,
    run_date: dt.date | None = None,
    top_n: int = TOP_MOVERS,
) -> WhatIfReport:
    """Score `run_date` under the base rules (default: the shipped ones) and the new rules, and
    compare. Reads `raw` and the D-1 partitions of `out`; writes nothing."""
    base, new = load_rules(base_path), load_rules(rules_path)
    run_date = run_date or latest_partition_date(raw)
    old_tables, new_tables, shared = score_both(raw, out, base, new, run_date)
    lazy = whatif_frames(
        {k: v.lazy() for k, v in old_tables.items()},
        {k: v.lazy() for k, v in new_tables.items()},
        facts_shared=shared,
        top_n=top_n,
    )
    frames = dict(zip(lazy, pl.collect_all(list(lazy.values())), strict=True))
    base_text, new_text = _rules_text(base_path), _rules_text(rules_path)
    file_diff = list(
        difflib.unified_diff(
            base_text.splitlines(),
            new_text.splitlines(),
            fromfile=base.source,
            tofile=new.source,
            lineterm="",
            n=1,
        )
    )
    notes = _notes(out, run_date, base, new, shared)
    if base == new:
        notes.append(
            "The two rule sets are identical"
            + (" (the files differ only in formatting or comments)." if file_diff else ".")
        )
    return WhatIfReport(
        run_date=run_date,
        raw=raw,
        out=out,
        base=base,
        new=new,
        facts_shared=shared,
        notes=notes,
        frames=frames,
        rules_changes=rules_diff(base, new),
        file_diff=file_diff,
        bands=migration_bands(shared),
    )


# --------------------------------------------------------------------------------------------
# files


def _outside_out(path: Path | None, out: Path, option: str) -> None:
    """The what-if never writes under --out (published tables live there)."""
    if path is not None and path.resolve().is_relative_to(out.resolve()):
        raise InputError(f"{option} {path}: is under --out {out}; the what-if writes nothing there")


def check_report_paths(out: Path, html_path: Path | None, json_path: Path | None) -> None:
    """Refuse report files under --out before anything runs (`InputError`, exit 2)."""
    _outside_out(html_path, out, "--html")
    _outside_out(json_path, out, "--json")


def write_whatif(
    raw: Path,
    out: Path,
    rules_path: Path,
    base_path: Path | None = None,
    run_date: dt.date | None = None,
    html_path: Path | None = None,
    json_path: Path | None = None,
) -> WhatIfReport:
    """`run_whatif`, then the report files asked for (self-contained HTML, JSON), each written
    atomically and listed in the report's `written`."""
    report = run_whatif(raw, out, rules_path, base_path, run_date)
    if html_path is not None:
        write_text_atomic(html_path, report_html(report))
        report.written.append(html_path)
    if json_path is not None:
        write_json_atomic(json_path, report_json(report))
        report.written.append(json_path)
    return report
