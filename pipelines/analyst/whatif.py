"""`expscore whatif`: the impact of a candidate rules file on one date, before it goes live.

Both rule sets score the same inputs through the one implementation of the rules
(`scoring.daily.score_facts`); when they share a time zone and window, the facts are loaded and
computed once and scored twice. Both sides start from the same labels and weights published for
D-1 under `--out`, which is only read: the what-if publishes nothing and writes only the report
files it is asked for. The comparison itself is `scoring.analysis.whatif` (pure); this module loads,
renders (text, self-contained HTML, JSON) and writes the report files; the command is
`pipelines/cli/whatif.py`.

Rendering is vectorised like the rest: every table cell is a Polars string expression and a
table is one `concat_str` per row joined in Polars, so no Python loop walks report rows.
"""

from __future__ import annotations

import datetime as dt
import difflib
import html
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.config import shipped_rules_bytes
from pipelines.errors import InputError
from pipelines.ingest.load import latest_partition_date
from pipelines.layout import partition_dir
from pipelines.nightly.publish import write_json_atomic, write_text_atomic
from pipelines.nightly.run import load_rules, previous_outputs
from pipelines.state import StateOptions, window_facts
from scoring.analysis.whatif import (
    BONUS_DRIVER,
    NEGLIGIBLE,
    TOP_MOVERS,
    migration_bands,
    rules_diff,
    same_window,
    whatif_frames,
)
from scoring.daily import DayFacts, rules_window, score_facts
from scoring.rules import Rules
from scoring.window import Window

REPORT_NAME = "expscore what-if"


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
# formatting expressions (shared by the text summary and the HTML)


def fixed(x: pl.Expr, decimals: int, signed: bool = False) -> pl.Expr:
    """`x` with exactly `decimals` decimals (`+` on positives when `signed`); null stays null.

    Polars has no format specs, so this builds `f"{x:+.3f}"` from an integer of the scaled value.
    """
    scaled = (x * 10**decimals).round(0).cast(pl.Int64)
    sign = (
        pl.when(scaled < 0)
        .then(pl.lit("-"))
        .when((scaled > 0) & pl.lit(signed))
        .then(pl.lit("+"))
        .otherwise(pl.lit(""))
    )
    whole = (scaled.abs() // 10**decimals).cast(pl.String)
    if decimals == 0:
        return pl.concat_str([sign, whole])
    frac = (scaled.abs() % 10**decimals).cast(pl.String).str.zfill(decimals)
    return pl.concat_str([sign, whole, pl.lit("."), frac])


def pct(x: pl.Expr, decimals: int = 1) -> pl.Expr:
    return pl.concat_str([fixed(x * 100, decimals), pl.lit("%")])


def pp(x: pl.Expr) -> pl.Expr:
    """A change of a share, in percentage points."""
    return pl.concat_str([fixed(x * 100, 2, signed=True), pl.lit(" pp")])


def category(x: pl.Expr) -> pl.Expr:
    return x.cast(pl.String).fill_null("none")


def arrow(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    return pl.concat_str([old.fill_null("—"), pl.lit(" → "), new.fill_null("—")])


def arrow_if_changed(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """`old → new`, or just the value when it did not change (a band, a tier)."""
    return pl.when(old.eq_missing(new)).then(old.fill_null("—")).otherwise(arrow(old, new))


def driver_text(drivers: pl.Expr) -> pl.Expr:
    """`platform_help_rate -0.044 (value 0.0061, score 4.39 → 3.89), bonus -0.050`.

    The effect on the shop score first, then the smoothed value the knots were applied to
    (`old → new` only when it changed, i.e. when `k` changed) and the indicator score.
    """
    d = pl.element().struct.field
    value = (
        pl.when(d("smoothed_value_old") == d("smoothed_value_new"))
        .then(fixed(d("smoothed_value_new"), 4))
        .otherwise(arrow(fixed(d("smoothed_value_old"), 4), fixed(d("smoothed_value_new"), 4)))
    )
    detail = pl.concat_str(
        [
            pl.lit(" (value "),
            value,
            pl.lit(", score "),
            arrow(fixed(d("indicator_score_old"), 2), fixed(d("indicator_score_new"), 2)),
            pl.lit(")"),
        ]
    )
    one = pl.concat_str(
        [
            d("indicator"),
            pl.lit(" "),
            fixed(d("effect"), 3, signed=True),
            pl.when(d("indicator") == BONUS_DRIVER).then(pl.lit("")).otherwise(detail),
        ]
    )
    return drivers.list.eval(one).list.join(", ").replace("", None).fill_null("—")


def _joined(frame: pl.DataFrame, line: pl.Expr, separator: str) -> str:
    """One string per row, joined: the vectorised way to turn a small frame into text."""
    if frame.is_empty():
        return ""
    return frame.select(line.str.join(separator)).item()


# --------------------------------------------------------------------------------------------
# text summary


def summary_lines(report: WhatIfReport) -> list[str]:
    """What a terminal shows: the verdict in a few lines, the detail is in the HTML / JSON."""
    f = report.frames
    s = f["summary"].row(0, named=True)
    changes = report.rules_changes
    lines = [
        f"{REPORT_NAME} {report.run_date}: {report.base.version} ({report.base.source}) → "
        f"{report.new.version} ({report.new.source})",
        f"  rules that differ: {changes.height}"
        + (" (" + _joined(changes, pl.col("rule"), ", ") + ")" if changes.height else ""),
        "  facts: "
        + ("computed once, shared by both rule sets" if report.facts_shared else "per rule set"),
        f"  shops: {s['shops']} (scored {s['scored_old']} → {s['scored_new']}); band changed "
        f"{s['band_changed']} (up {s['moved_up']}, down {s['moved_down']}, other "
        f"{s['moved_other']}); score down {s['score_down']}, up {s['score_up']}",
    ]
    shares = f["shares"].filter(pl.col("count_change") != 0)
    lines.append(
        "  shares changed: "
        + _joined(
            shares,
            pl.concat_str(
                [
                    pl.col("metric"),
                    pl.lit(" "),
                    arrow(pct(pl.col("share_old")), pct(pl.col("share_new"))),
                    pl.lit(" ("),
                    pp(pl.col("share_change")),
                    pl.lit(")"),
                ]
            ),
            "; ",
        )
        or "none"
    )
    weights = f["shop_weight_by_category"].filter(pl.col("target_weight_change").abs() > NEGLIGIBLE)
    lines.append(
        "  target traffic weight by main category: "
        + (
            _joined(
                weights,
                pl.concat_str(
                    [
                        category(pl.col("main_category_id")),
                        pl.lit(" "),
                        fixed(pl.col("target_weight_change"), 2, signed=True),
                        pl.lit(" ("),
                        pp(pl.col("target_weight_share_change")),
                        pl.lit(")"),
                    ]
                ),
                ", ",
            )
            or "unchanged"
        )
    )
    labels = f["labels"].filter((pl.col("gained") > 0) | (pl.col("lost") > 0))
    lines.append(
        "  labels: "
        + (
            _joined(
                labels,
                pl.format("{} +{} -{}", pl.col("label"), pl.col("gained"), pl.col("lost")),
                ", ",
            )
            or "no change"
        )
    )
    for name, title in (("top_losses", "largest loss"), ("top_gains", "largest gain")):
        top = f[name].head(1)
        if top.height:
            lines.append(
                f"  {title}: "
                + _joined(
                    top,
                    pl.concat_str(
                        [
                            pl.lit("shop "),
                            pl.col("shop_id").cast(pl.String),
                            pl.lit(" (category "),
                            category(pl.col("main_category_id")),
                            pl.lit("), target weight "),
                            arrow(
                                fixed(pl.col("target_weight_old"), 3),
                                fixed(pl.col("target_weight_new"), 3),
                            ),
                            pl.lit(", drivers: "),
                            driver_text(pl.col("drivers")),
                        ]
                    ),
                    "",
                )
            )
    lines.extend(f"  note: {note}" for note in report.notes)
    lines.extend(f"  wrote {path}" for path in report.written)
    return lines


# --------------------------------------------------------------------------------------------
# JSON


def _records(frame: pl.DataFrame, columns: Sequence[str] | None = None) -> list[dict]:
    return (frame.select(columns) if columns else frame).to_dicts()


def _matrix(grid: pl.DataFrame, keys: Sequence[str] = ()) -> pl.DataFrame:
    """A sorted migration grid folded into rows (old band) of counts (new band)."""
    rows = grid.group_by(*keys, "band_old", maintain_order=True).agg(pl.col("shops"))
    return rows.group_by(*keys, maintain_order=True).agg(matrix=pl.col("shops"))


MOVER_COLUMNS = (
    "shop_id",
    "main_category_id",
    "band_old",
    "band_new",
    "score_old",
    "score_new",
    "score_change",
    "target_weight_old",
    "target_weight_new",
    "target_weight_change",
    "weight_old",
    "weight_new",
    "weight_change",
    "refund_only_tier_old",
    "refund_only_tier_new",
    "drivers",
)


def report_json(report: WhatIfReport) -> dict[str, Any]:
    """The report for a review tool: every section, numbers unrounded."""
    f = report.frames
    moved = f["shop_changes"].filter(pl.col("direction") != "same")
    return {
        "report": REPORT_NAME,
        "run_date": report.run_date.isoformat(),
        "raw": str(report.raw),
        "out": str(report.out),
        "base_rules": {"version": report.base.version, "source": report.base.source},
        "new_rules": {"version": report.new.version, "source": report.new.source},
        "identical_rules": report.identical_rules,
        "facts_shared": report.facts_shared,
        "notes": report.notes,
        "summary": f["summary"].row(0, named=True),
        "rules_changes": [  # a handful of rules, not data rows
            {**change, "old": json.loads(change["old"]), "new": json.loads(change["new"])}
            for change in _records(report.rules_changes)
        ],
        "rules_file_diff": report.file_diff,
        "band_migration": {
            "bands": list(report.bands),
            "overall": _matrix(f["migration"]).row(0, named=True)["matrix"]
            if f["migration"].height
            else [],
            "by_category": _records(_matrix(f["migration_by_category"], ["main_category_id"])),
            "moves_by_category": _records(f["moves_by_category"]),
            "shops_moved": _records(
                moved,
                ["shop_id", "main_category_id", "band_old", "band_new", "score_old", "score_new"],
            ),
        },
        "shares": _records(f["shares"]),
        "traffic_weight": {
            "shops_by_main_category": _records(f["shop_weight_by_category"]),
            "items_by_category": _records(f["item_weight_by_category"]),
            "top_gains": _records(f["top_gains"], MOVER_COLUMNS),
            "top_losses": _records(f["top_losses"], MOVER_COLUMNS),
        },
        "labels": _records(f["labels"]),
    }


# --------------------------------------------------------------------------------------------
# HTML: one self-contained file, inline CSS, inline SVG; classes only, so restyling is CSS only

CSS = """
:root { --ink: #1f2933; --muted: #6b7785; --line: #d9dee4; --head: #f3f5f7;
        --up: #1a7f37; --up-bg: #e6f4ea; --down: #b42318; --down-bg: #fdecea;
      }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 1px solid var(--line); padding-bottom: .3rem; } h3 { font-size: 1rem; }
.meta, .note, .empty { color: var(--muted); }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
thead th { background: var(--head); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
tr.group-start td { border-top: 2px solid var(--muted); }
.up { color: var(--up); } .down { color: var(--down); }
td.cell-up { background: var(--up-bg); } td.cell-down { background: var(--down-bg); }
td.cell-same { font-weight: 600; } td.zero { color: var(--line); }
.kpi { display: flex; flex-wrap: wrap; gap: .8rem; padding: 0; list-style: none; }
.kpi li { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem; }
.kpi b { display: block; font-size: 1.2rem; }
svg.bars rect.up { fill: var(--up); } svg.bars rect.down { fill: var(--down); }
svg.bars line.axis { stroke: var(--muted); stroke-width: 1; }
pre.diff { background: var(--head); padding: .6rem; overflow-x: auto; }
code { font-size: .92em; }
"""


def esc(x: pl.Expr) -> pl.Expr:
    """HTML-escape a string column (bands like `<4.0` must not become tags)."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        x = x.str.replace_all(char, entity, literal=True)
    return x


def change_class(x: pl.Expr) -> pl.Expr:
    """`up` / `down` for a positive / negative change (for colour), empty otherwise."""
    return (
        pl.when(x > NEGLIGIBLE)
        .then(pl.lit("up"))
        .when(x < -NEGLIGIBLE)
        .then(pl.lit("down"))
        .otherwise(pl.lit(""))
    )


@dataclass(frozen=True)
class Column:
    """One column of an HTML table: a header and a Polars expression for each row's cell.

    With `headers`, the expression yields several complete `<td>` elements (a matrix row) and
    `headers` names them.
    """

    header: str
    cell: pl.Expr  # plain text, escaped on output (raw HTML when `markup`)
    numeric: bool = False
    css: pl.Expr | None = None  # an extra class per row, e.g. change_class(...)
    markup: bool = False
    headers: tuple[str, ...] = ()


def _td(column: Column) -> pl.Expr:
    if column.headers:
        return column.cell
    text = column.cell.cast(pl.String).fill_null("—")
    text = text if column.markup else esc(text)
    classes = [pl.lit("num" if column.numeric else "")]
    if column.css is not None:
        classes.append(column.css.fill_null(""))
    cls = pl.concat_str(classes, separator=" ").str.strip_chars()
    opening = (
        pl.when(cls == "")
        .then(pl.lit("<td>"))
        .otherwise(pl.concat_str([pl.lit('<td class="'), cls, pl.lit('">')]))
    )
    return pl.concat_str([opening, text, pl.lit("</td>")])


def _th(column: Column) -> str:
    heads = column.headers or (column.header,)
    numeric = column.numeric or bool(column.headers)
    return "".join(f"<th{' class=num' if numeric else ''}>{html.escape(h)}</th>" for h in heads)


def table(
    frame: pl.DataFrame,
    columns: Sequence[Column],
    empty: str = "none",
    row_css: pl.Expr | None = None,
) -> str:
    """An HTML table of `frame`; every cell is computed by Polars, rows joined in Polars.

    `row_css` gives each row a class (null for none), e.g. to mark the start of a group.
    """
    if frame.is_empty():
        return f'<p class="empty">{html.escape(empty)}</p>'
    head = "".join(_th(c) for c in columns)  # a loop over columns; rows are Polars'
    tr = pl.lit("<tr>")
    if row_css is not None:
        tr = (
            pl.when(row_css.is_null())
            .then(tr)
            .otherwise(pl.concat_str([pl.lit('<tr class="'), row_css, pl.lit('">')]))
        )
    row = pl.concat_str([tr, *[_td(c) for c in columns], pl.lit("</tr>")])
    body = _joined(frame, row, "\n")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def migration_table(grid: pl.DataFrame, bands: Sequence[str], keys: Sequence[str] = ()) -> str:
    """The matrix: one row per old band, one column per new band; moves down in red, up in
    green, the diagonal (no move) bold. With `keys`, one block of rows per key value, and only
    the old bands that hold shops."""
    cell_class = (
        pl.when(pl.col("shops") == 0)
        .then(pl.lit("num zero"))
        .otherwise(pl.concat_str([pl.lit("num cell-"), pl.col("direction")]))
    )
    cell = pl.concat_str(
        [pl.lit('<td class="'), cell_class, pl.lit('">'), pl.col("shops").cast(pl.String)]
    ) + pl.lit("</td>")
    rows = (
        grid.with_columns(cell=cell)
        .group_by(*keys, "band_old", maintain_order=True)
        .agg(
            cells=pl.col("cell").str.join(""),
            shops=pl.col("shops").sum(),
            moved=pl.col("shops").filter(pl.col("direction") != "same").sum(),
        )
    )
    row_css = None
    first = pl.lit(True)
    if keys:
        rows = rows.filter(pl.col("shops") > 0).with_columns(
            first=pl.struct(keys).is_first_distinct()
        )
        first = pl.col("first")
        row_css = pl.when(first).then(pl.lit("group-start"))
    columns = [
        *[
            Column("main category", pl.when(first).then(category(pl.col(k))).otherwise(pl.lit("")))
            for k in keys
        ],
        Column("from \\ to", pl.col("band_old")),
        Column("", pl.col("cells"), headers=tuple(bands)),
        Column("shops", pl.col("shops"), numeric=True),
        Column("changed band", pl.col("moved"), numeric=True, css=change_class(-pl.col("moved"))),
    ]
    return table(rows, columns, row_css=row_css)


def change_bar(x: pl.Expr, scale: float, width: int = 160) -> pl.Expr:
    """An inline SVG bar from a centre line: right and green for a gain, left and red for a loss,
    lengths relative to `scale` (the largest change shown), so small moves stay visible."""
    half = width / 2
    length = (x.fill_null(0.0).abs() / scale * (half - 2)) if scale > 0 else pl.lit(0.0)
    start = pl.when(x < 0).then(half - length).otherwise(pl.lit(half))
    css = pl.when(x < 0).then(pl.lit("down")).otherwise(pl.lit("up"))
    return pl.concat_str(
        [
            pl.lit(f'<svg class="bars" width="{width}" height="14" role="img" aria-label="'),
            pp(x),
            pl.lit('"><rect class="'),
            css,
            pl.lit('" y="2" height="10" x="'),
            fixed(start, 1),
            pl.lit('" width="'),
            fixed(length, 1),
            pl.lit(f'"/><line class="axis" x1="{half}" x2="{half}" y1="0" y2="14"/></svg>'),
        ]
    )


def _largest(frame: pl.DataFrame, column: str) -> float:
    """The largest absolute value of a column (0.0 for an empty or all-null one): a bar scale."""
    value = frame.select(pl.col(column).abs().max()).item() if frame.height else None
    return float(value or 0.0)


def _weight_change_columns(column: str, before: str, after: str, delta: str) -> list[Column]:
    """`<column>_old`, `_new` and the signed `_change` of a weight, to two decimals."""
    change = pl.col(f"{column}_change")
    return [
        Column(before, fixed(pl.col(f"{column}_old"), 2), numeric=True),
        Column(after, fixed(pl.col(f"{column}_new"), 2), numeric=True),
        Column(delta, fixed(change, 2, signed=True), numeric=True, css=change_class(change)),
    ]


def _share_shift_columns(column: str, label: str, frame: pl.DataFrame) -> list[Column]:
    """A share before -> after, its change in points, and a bar scaled to the largest change."""
    change = pl.col(f"{column}_change")
    return [
        Column(
            label,
            arrow(pct(pl.col(f"{column}_old"), 2), pct(pl.col(f"{column}_new"), 2)),
            numeric=True,
        ),
        Column("Δ share", pp(change), numeric=True, css=change_class(change)),
        Column("shift", change_bar(change, _largest(frame, f"{column}_change")), markup=True),
    ]


def _kpis(report: WhatIfReport) -> str:
    s = report.frames["summary"].row(0, named=True)
    items = [
        ("rules that differ", report.rules_changes.height),
        ("shops", s["shops"]),
        ("scored (before → after)", f"{s['scored_old']} → {s['scored_new']}"),
        ("changed band", s["band_changed"]),
        ("moved down / up", f"{s['moved_down']} / {s['moved_up']}"),
        ("score down / up", f"{s['score_down']} / {s['score_up']}"),
        ("target weight changed", s["target_weight_changed"]),
    ]
    return (
        '<ul class="kpi">'
        + "".join(f"<li><b>{html.escape(str(v))}</b>{html.escape(k)}</li>" for k, v in items)
        + "</ul>"
    )


def _section(anchor: str, title: str, *parts: str) -> str:
    return (
        f'<section id="{anchor}">\n<h2>{html.escape(title)}</h2>\n'
        + "\n".join(parts)
        + "\n</section>"
    )


def _p(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{html.escape(text)}</p>'


def _mover_columns() -> list[Column]:
    col = pl.col
    return [
        Column("shop", col("shop_id")),
        Column("main category", category(col("main_category_id"))),
        Column(
            "band",
            arrow_if_changed(col("band_old"), col("band_new")),
            css=pl.concat_str(
                [pl.lit("nowrap"), col("direction").replace("same", "")], separator=" "
            ),
        ),
        Column(
            "score", arrow(fixed(col("score_old"), 3), fixed(col("score_new"), 3)), numeric=True
        ),
        Column(
            "Δ score",
            fixed(col("score_change"), 3, signed=True),
            numeric=True,
            css=change_class(col("score_change")),
        ),
        Column(
            "target weight",
            arrow(fixed(col("target_weight_old"), 3), fixed(col("target_weight_new"), 3)),
            numeric=True,
        ),
        Column(
            "Δ target",
            fixed(col("target_weight_change"), 3, signed=True),
            numeric=True,
            css=change_class(col("target_weight_change")),
        ),
        Column(
            "weight on the date",
            arrow(fixed(col("weight_old"), 3), fixed(col("weight_new"), 3)),
            numeric=True,
        ),
        Column(
            "refund-only tier",
            arrow_if_changed(col("refund_only_tier_old"), col("refund_only_tier_new")),
        ),
        Column(
            "drivers (score effect, indicator score before → after)", driver_text(col("drivers"))
        ),
    ]


def report_html(report: WhatIfReport) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no external reference)."""
    f = report.frames
    col = pl.col
    title = f"What-if {report.run_date}: rules {report.new.version} vs {report.base.version}"
    meta = (
        f"Business date {report.run_date} · base rules {report.base.version} "
        f"({report.base.source}) · new rules {report.new.version} ({report.new.source}) · raw "
        f"{report.raw} · nothing was published"
    )
    nav = " ".join(
        f'<a href="#{a}">{html.escape(t)}</a>'
        for a, t in (
            ("rules", "Rules"),
            ("migration", "Band migration"),
            ("shares", "Shares"),
            ("traffic", "Traffic weight"),
            ("movers", "Gains and losses"),
            ("labels", "Labels"),
        )
    )
    notes = "\n".join(_p(n) for n in report.notes)

    rules = report.rules_changes
    rules_part = (
        _p(f"{rules.height} rule(s) differ:", "lead")
        + table(
            rules,
            [
                Column("rule", col("rule")),
                Column("applies to", col("scope")),
                Column("before", col("old")),
                Column("after", col("new")),
                Column("note", col("note")),
            ],
        )
        if rules.height
        else _p("No rule differs: both rule sets score every shop the same way.", "lead")
    )
    file_diff = (
        "<details><summary>Text diff of the two rules files</summary>"
        f'<pre class="diff">{html.escape(chr(10).join(report.file_diff))}</pre></details>'
        if report.file_diff
        else _p("The two rules files are identical, byte for byte.")
    )

    bands = report.bands
    moves = f["moves_by_category"]
    migration_parts = [
        _p("Shops by band under the base rules (rows) and the new rules (columns)."),
        "<h3>All shops</h3>",
        migration_table(f["migration"], bands),
        "<h3>By main category</h3>",
        migration_table(f["migration_by_category"], bands, ["main_category_id"])
        if moves.height
        else _p("No shop changes band in any category.", "empty"),
    ]

    shares_part = table(
        f["shares"],
        [
            Column("share of", col("metric")),
            Column("of all", col("of")),
            Column(
                "before",
                pl.format("{} ({}/{})", pct(col("share_old")), col("count_old"), col("total_old")),
                numeric=True,
            ),
            Column(
                "after",
                pl.format("{} ({}/{})", pct(col("share_new")), col("count_new"), col("total_new")),
                numeric=True,
            ),
            Column(
                "change",
                pp(col("share_change")),
                numeric=True,
                css=change_class(col("share_change")),
            ),
        ],
    )

    shop_weights = f["shop_weight_by_category"]
    weight_columns = [
        Column("main category", category(col("main_category_id"))),
        Column("shops", col("shops"), numeric=True),
        *_weight_change_columns("weight", "weight before", "weight after", "Δ"),
        *_weight_change_columns("target_weight", "target before", "target after", "Δ target"),
        *_share_shift_columns("target_weight_share", "share of target", shop_weights),
    ]
    item_weights = f["item_weight_by_category"]
    item_columns = [
        Column("category", category(col("category_id"))),
        Column("items", col("items"), numeric=True),
        *_weight_change_columns("weight", "weight before", "weight after", "Δ"),
        *_share_shift_columns("weight_share", "share", item_weights),
    ]
    traffic_parts = [
        _p(
            "Total shop traffic weight per main category. 'Weight' is the published weight on "
            "the date (clamped to the daily change from D-1's); 'target' is where it settles. "
            "The bars show each category's change in its share of all target weight, to "
            "the scale of the largest change: does the rule move traffic between industries?"
        ),
        table(shop_weights, weight_columns),
        "<h3>Items, by item category</h3>",
        table(item_weights, item_columns),
    ]

    mover_note = _p(
        "Ranked by the change in target weight (the lasting effect; the weight on the date is "
        "clamped). Drivers: the indicators (or the bonus) whose points lost changed most, with "
        "their effect on the score."
    )
    movers_parts = [
        mover_note,
        f"<h3>Largest gains (top {TOP_MOVERS})</h3>",
        table(f["top_gains"], _mover_columns(), "No shop gains traffic weight."),
        f"<h3>Largest losses (top {TOP_MOVERS})</h3>",
        table(f["top_losses"], _mover_columns(), "No shop loses traffic weight."),
    ]

    labels_part = table(
        f["labels"],
        [
            Column("label", col("label")),
            Column("held before", col("held_old"), numeric=True),
            Column("held after", col("held_new"), numeric=True),
            Column("gained", col("gained"), numeric=True, css=change_class(col("gained"))),
            Column("lost", col("lost"), numeric=True, css=change_class(-col("lost"))),
            Column(
                "net",
                fixed(col("net").cast(pl.Float64), 0, signed=True),
                numeric=True,
                css=change_class(col("net")),
            ),
        ],
    )

    body = "\n".join(
        [
            f"<header><h1>{html.escape(title)}</h1>{_p(meta, 'meta')}</header>",
            f"<nav>{nav}</nav>",
            _section("summary", "Summary", _kpis(report), notes),
            _section("rules", "Rules that differ", rules_part, file_diff),
            _section("migration", "Band migration", *migration_parts),
            _section(
                "shares", "Shares of 4.8+, campaign-eligible and refund-only tiers", shares_part
            ),
            _section("traffic", "Traffic weight by category", *traffic_parts),
            _section("movers", "Largest traffic-weight gains and losses", *movers_parts),
            _section("labels", "Labels gained and lost", labels_part),
            f"<footer>{_p(f'Generated by expscore whatif for {report.run_date}.')}</footer>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
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
