"""Rendering a what-if as one self-contained HTML page (`expscore whatif --html`): inline CSS
and inline SVG bars, no external reference; classes only, so restyling is CSS only.

Every table cell is a Polars expression and the rows of a table are joined in Polars, like the
text summary's (`whatif_format`, whose cell formatting this module shares).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from pipelines.analyst.whatif_format import (
    _joined,
    arrow,
    arrow_if_changed,
    category,
    driver_text,
    fixed,
    pct,
    pp,
)
from scoring.analysis.whatif import NEGLIGIBLE, TOP_MOVERS

if TYPE_CHECKING:  # the report's type only: pipelines.analyst.whatif imports this module
    from pipelines.analyst.whatif import WhatIfReport

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
