"""`expscore report`: one self-contained HTML file with the charts analysts and platform teams ask
for, read from the published tables.

Self-contained means it opens from an e-mail attachment or a laptop with no network: plotly.js
is inlined once (no CDN, no external fonts), every figure is a `<div>` plus its data. The page
has no wall-clock timestamp, so the same tables give the same file.

The numbers are computed with Polars (vectorised) in `report_data`, the figures here only draw
them:
- score distribution on the date, coloured by band;
- band shares over the last N days, with the 4.8+ share as the headline number (the figure
  marketplaces publish);
- per-dimension score distributions;
- per-indicator distributions (smoothed value, the scale the knots apply to) by main category;
- biggest movers: score change from the first to the last date of the period;
- labels gained and lost day over day;
- rows removed by exemptions on the date, per indicator and main category (13.3);
- orders, refunds and sessions removed by upheld appeals, per date (13.2);
- quarantined rows per run by reason.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from pipelines.analyst.report_data import MOVERS_EACH_WAY, ReportData, load_report_data
from pipelines.errors import InputError
from pipelines.nightly.publish import write_text_atomic
from pipelines.progress import Reporter
from scoring.catalog import BANDS, DIMENSIONS, INDICATORS

HEADLINE_BAND = "4.8+"
SCORED_BANDS = [b for b in BANDS if b != "unscored"]
BAND_COLOURS = {"4.8+": "#1a9850", "4.5-4.8": "#91cf60", "4.0-4.5": "#fdae61", "<4.0": "#d73027"}

# Section id -> title. Tests and readers find each chart by its id.
CHARTS: dict[str, str] = {
    "score-distribution": "Score distribution",
    "band-shares": "Band shares over time",
    "dimension-distributions": "Dimension scores",
    "indicator-distributions": "Indicators by main category",
    "biggest-movers": "Biggest movers",
    "labels-gained-lost": "Labels gained and lost",
    "exemptions-applied": "Exemptions applied",
    "appeals-upheld": "Upheld appeals",
    "quarantine-counts": "Quarantined rows",
}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
TEMPLATE = "plotly_white"


# --------------------------------------------------------------------------------------------
# figures


def _date_strings(dates: pl.Series) -> list[str]:
    """ISO strings: plotly then shows calendar dates, not instants with a time of day."""
    return dates.dt.to_string("%Y-%m-%d").to_list()


def _day_axis(dates: list[dt.date]) -> dict[str, Any]:
    """A date axis ticked in whole days (plotly would tick hours for a short period)."""
    step = max(1, len(dates) // 10)
    return {"type": "date", "tickformat": "%Y-%m-%d", "dtick": step * 86_400_000}


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 16})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=240)
    return fig


def score_distribution(data: ReportData) -> go.Figure:
    scored = data.shops.filter(pl.col("status") == "scored")
    if scored.height == 0:
        return _empty(f"no scored shop on {data.day}")
    fig = go.Figure()
    for band in SCORED_BANDS:
        fig.add_trace(
            go.Histogram(
                x=scored.filter(pl.col("band") == band)["score"].to_list(),
                name=band,
                marker_color=BAND_COLOURS[band],
                xbins={"start": 3.0, "end": 5.0001, "size": 0.05},
            )
        )
    for line in (4.0, 4.5, 4.8):
        fig.add_vline(x=line, line_dash="dot", line_color="#555")
    fig.update_layout(
        barmode="stack",
        xaxis_title="shop score (3.0-5.0)",
        yaxis_title="scored shops",
        xaxis_range=[3.0, 5.0],
    )
    return fig


def band_share_figure(data: ReportData) -> go.Figure:
    if data.band_shares.height == 0:
        return _empty("no scored shop in the period")
    fig = go.Figure()
    for band in reversed(SCORED_BANDS):
        rows = data.band_shares.filter(pl.col("band") == band)
        fig.add_trace(
            go.Scatter(
                x=_date_strings(rows["dt"]),
                y=rows["share"].to_list(),
                name=band,
                mode="lines+markers",
                stackgroup="bands",
                line_color=BAND_COLOURS[band],
                hovertemplate="%{x}: %{y:.1%}",
            )
        )
    fig.update_layout(
        yaxis_tickformat=".0%", yaxis_title="share of scored shops", yaxis_range=[0, 1]
    )
    fig.update_xaxes(**_day_axis(data.dates))
    return fig


def dimension_figure(data: ReportData) -> go.Figure:
    scored = data.shops.filter(pl.col("status") == "scored")
    if scored.height == 0:
        return _empty(f"no scored shop on {data.day}")
    fig = go.Figure()
    for dim in DIMENSIONS:
        fig.add_trace(go.Box(y=scored[f"{dim}_score"].to_list(), name=dim, boxmean=True))
    fig.update_layout(yaxis_title="dimension score", showlegend=False)
    return fig


def indicator_figure(data: ReportData) -> go.Figure:
    if data.indicators.height == 0:
        return _empty(f"no assessed indicator of a scored shop on {data.day}")
    columns = 3
    rows = -(-len(INDICATORS) // columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[i.id for i in INDICATORS],
        vertical_spacing=0.06,
        horizontal_spacing=0.06,
    )
    categories = data.indicators["main_category_id"].unique().sort()
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
               "#ff9da6", "#9d755d", "#bab0ac"]  # fmt: skip
    colour = {c: palette[n % len(palette)] for n, c in enumerate(categories.to_list())}
    for n, ind in enumerate(INDICATORS):
        values = data.indicators.filter(pl.col("indicator") == ind.id)
        for category in categories.to_list():
            fig.add_trace(
                go.Box(
                    y=values.filter(pl.col("main_category_id") == category)[
                        "smoothed_value"
                    ].to_list(),
                    name=str(category),
                    legendgroup=str(category),
                    showlegend=n == 0,
                    marker_color=colour[category],
                    boxpoints=False,
                ),
                row=n // columns + 1,
                col=n % columns + 1,
            )
    fig.update_layout(height=300 * rows, legend_title_text="main category")
    fig.update_xaxes(showticklabels=False)
    return fig


def movers_figure(data: ReportData) -> go.Figure:
    if len(data.dates) < 2:
        return _empty("one date only: nothing to compare (use --days)")
    if data.movers.height == 0:
        return _empty("no shop's score changed")
    shown = data.movers.select(
        label=pl.format("shop {} ({})", "shop_id", "main_category_id"),
        change=pl.col("change"),
        colour=pl.when(pl.col("change") > 0).then(pl.lit("#1a9850")).otherwise(pl.lit("#d73027")),
        hover=pl.format("{} → {}", pl.col("score_from").round(3), pl.col("score_to").round(3)),
    )
    fig = go.Figure(
        go.Bar(
            x=shown["change"].to_list(),
            y=shown["label"].to_list(),
            orientation="h",
            marker_color=shown["colour"].to_list(),
            hovertext=shown["hover"].to_list(),
            hovertemplate="%{y}: %{hovertext} (%{x:+.3f})<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title=f"score change {data.dates[0]} → {data.day}",
        height=max(300, 28 * data.movers.height),
        yaxis={"automargin": True},
    )
    return fig


def labels_figure(data: ReportData) -> go.Figure:
    changes = data.label_changes
    if changes.height == 0:
        return _empty("no label gained or lost in the period")
    fig = go.Figure(
        [
            go.Bar(
                x=changes["label"].to_list(),
                y=changes["gained"].to_list(),
                name="gained",
                marker_color="#1a9850",
            ),
            go.Bar(
                x=changes["label"].to_list(),
                y=(-changes["lost"]).to_list(),
                name="lost",
                marker_color="#d73027",
                customdata=changes["lost"].to_list(),
                hovertemplate="%{x}: %{customdata} lost<extra></extra>",
            ),
        ]
    )
    fig.update_layout(barmode="relative", yaxis_title="shops (lost shown below zero)")
    return fig


def quarantine_figure(data: ReportData) -> go.Figure:
    if data.quarantine.height == 0:
        return _empty("no quarantined row in the period")
    fig = go.Figure()
    for reason in data.quarantine["reason"].unique().sort().to_list():
        rows = data.quarantine.filter(pl.col("reason") == reason)
        fig.add_trace(go.Bar(x=_date_strings(rows["dt"]), y=rows["rows"].to_list(), name=reason))
    fig.update_layout(barmode="stack", yaxis_title="rows rejected in the run's window")
    fig.update_xaxes(**_day_axis(data.dates))
    return fig


def exemptions_figure(data: ReportData) -> go.Figure:
    if data.exempted.height == 0:
        return _empty("no exemption removed a row on the date")
    fig = go.Figure()
    categories = data.exempted.with_columns(
        category=pl.col("main_category_id").cast(pl.String).fill_null("none")
    )
    for category in categories["category"].unique().sort().to_list():
        rows = categories.filter(pl.col("category") == category)
        fig.add_trace(
            go.Bar(
                x=rows["indicator"].to_list(),
                y=rows["rows"].to_list(),
                name=f"main category {category}",
            )
        )
    fig.update_layout(barmode="stack", yaxis_title="rows removed from the indicator")
    return fig


def appeals_figure(data: ReportData) -> go.Figure:
    if data.appeals.height == 0 or data.appeals["subjects"].sum() == 0:
        return _empty("no upheld appeal in the period")
    fig = go.Figure(
        go.Bar(x=_date_strings(data.appeals["dt"]), y=data.appeals["subjects"].to_list())
    )
    fig.update_layout(yaxis_title="orders, refunds and sessions removed")
    fig.update_xaxes(**_day_axis(data.dates))
    return fig


FIGURES = {
    "score-distribution": score_distribution,
    "band-shares": band_share_figure,
    "dimension-distributions": dimension_figure,
    "indicator-distributions": indicator_figure,
    "biggest-movers": movers_figure,
    "labels-gained-lost": labels_figure,
    "exemptions-applied": exemptions_figure,
    "appeals-upheld": appeals_figure,
    "quarantine-counts": quarantine_figure,
}
CAPTIONS = {
    "score-distribution": "Scored shops on the date by score, coloured by band; dotted lines at "
    "4.0, 4.5 and 4.8.",
    "band-shares": "Share of scored shops in each band, per published date of the period.",
    "dimension-distributions": "Product, logistics and service scores of the scored shops "
    "(box: quartiles, dashed: mean).",
    "indicator-distributions": "Smoothed value of each indicator (the value the knots apply to) "
    "for the scored shops, by main category.",
    "biggest-movers": f"The {MOVERS_EACH_WAY} biggest rises and falls of score between the "
    "first and the last date of the period (shops scored on both).",
    "labels-gained-lost": "Shops that gained or lost each label, day over day, summed over "
    "the period; currently held counts in the table.",
    "exemptions-applied": "Rows the rules' exemptions took out of each indicator on the date "
    "(the `excluded` column of shop_indicators), by the shop's main category: what a holiday "
    "or a disaster exemption changed.",
    "appeals-upheld": "Orders, refunds and sessions that upheld appeals removed from the "
    "window, over all shops, per published date (the `appeals_upheld` column of shop_scores).",
    "quarantine-counts": "Raw rows rejected into quarantine, by reason. Each run lists every "
    "rejected row of its 30-day window, so a bad row appears in several runs.",
}


# --------------------------------------------------------------------------------------------
# page


def _headline(data: ReportData) -> dict[str, Any]:
    def share_on(day: dt.date) -> float | None:
        rows = data.band_shares.filter((pl.col("dt") == day) & (pl.col("band") == HEADLINE_BAND))
        on_day = data.band_shares.filter(pl.col("dt") == day)
        if on_day.height == 0:
            return None
        return float(rows["share"].sum())

    scored = data.shops.filter(pl.col("status") == "scored").height
    now, before = share_on(data.day), share_on(data.dates[0])
    return {
        "share": now,
        "change": None if now is None or before is None or len(data.dates) < 2 else now - before,
        "shops": data.shops.height,
        "scored": scored,
        "items": data.items,
        "quarantined": int(data.quarantine.filter(pl.col("dt") == data.day)["rows"].sum()),
    }


def _kpis(data: ReportData) -> str:
    h = _headline(data)
    share = "–" if h["share"] is None else f"{h['share']:.1%}"
    change = ""
    if h["change"] is not None:
        change = f'<div class="delta">{h["change"] * 100:+.1f} pts since {data.dates[0]}</div>'
    cards = [
        f'<div class="kpi headline"><div class="value">{share}</div>'
        f'<div class="name">scored shops at 4.8+ [体验分4.8+]</div>{change}</div>',
        f'<div class="kpi"><div class="value">{h["scored"]:,} / {h["shops"]:,}</div>'
        f'<div class="name">shops scored / with activity</div></div>',
        f'<div class="kpi"><div class="value">{h["items"]:,}</div>'
        f'<div class="name">items with a valid order</div></div>',
        f'<div class="kpi"><div class="value">{h["quarantined"]:,}</div>'
        f'<div class="name">quarantined rows in the window</div></div>',
    ]
    return '<div class="kpis">' + "".join(cards) + "</div>"


def _labels_table(data: ReportData) -> str:
    if data.labels_held.height == 0:
        return "<p>No label held on the date.</p>"
    rows = data.labels_held.select(
        pl.format("<tr><td>{}</td><td>{}</td></tr>", "label", "shops").str.join("")
    ).item()
    return (
        f'<table class="small"><tr><th>label held on {data.day}</th><th>shops</th></tr>'
        f"{rows}</table>"
    )


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;
margin:0;background:#f6f7f9;color:#222}
header{background:#22313f;color:#fff;padding:20px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;opacity:.8}
main{max-width:1200px;margin:0 auto;padding:16px 32px 48px}
.kpis{display:flex;gap:16px;flex-wrap:wrap;margin:16px 0}
.kpi{background:#fff;border-radius:8px;padding:16px 20px;min-width:180px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
.kpi .value{font-size:28px;font-weight:600}.kpi .name{color:#666;font-size:13px}
.kpi.headline .value{font-size:40px;color:#1a9850}.delta{font-size:13px;color:#444}
section{background:#fff;border-radius:8px;margin:20px 0;padding:8px 20px 16px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
section h2{font-size:18px;margin:12px 0 4px}.caption{color:#666;font-size:13px;margin:0 0 8px}
table.small{border-collapse:collapse;font-size:13px;margin-top:8px}
table.small td,table.small th{border-bottom:1px solid #eee;padding:4px 12px;text-align:left}
nav a{color:#fff;margin-right:14px;font-size:13px}
"""


def render_html(data: ReportData) -> str:
    """The whole page: inline CSS, plotly.js inlined once, one section per chart."""
    sections = []
    for chart_id, title in CHARTS.items():
        fig = FIGURES[chart_id](data)
        fig.update_layout(template=TEMPLATE, margin={"t": 40, "b": 40, "l": 60, "r": 20})
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{chart_id}",
            config=PLOTLY_CONFIG,
        )
        extra = _labels_table(data) if chart_id == "labels-gained-lost" else ""
        sections.append(
            f'<section id="{chart_id}"><h2>{html.escape(title)}</h2>'
            f'<p class="caption">{html.escape(CAPTIONS[chart_id])}</p>{div}{extra}</section>'
        )
    period = (
        f"{data.dates[0]} to {data.day}, {len(data.dates)} published dates"
        if len(data.dates) > 1
        else f"{data.day} only"
    )
    nav = "".join(f'<a href="#{cid}">{html.escape(t)}</a>' for cid, t in CHARTS.items())
    title = f"Experience scores {data.day}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1>"
        f"<p>rules {html.escape(data.rules_version)} · period {html.escape(period)}</p>"
        f"<nav>{nav}</nav></header><main>{_kpis(data)}{''.join(sections)}</main></body></html>\n"
    )


def write_html(path: Path, page: str) -> None:
    """The report, written atomically into an existing folder (a typo in --html is an error)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"report: --html {path}: folder {path.parent} does not exist")
    write_text_atomic(path, page)


def write_report(
    out: Path,
    html_path: Path,
    day: dt.date | None = None,
    days: int = 30,
    reporter: Reporter | None = None,
) -> ReportData:
    """Read the period's tables under `out`, draw the charts, write one HTML file."""
    reporter = reporter or Reporter()
    with reporter.task("report", 3, description="report: reading tables") as task:
        data = load_report_data(out, day, days)
        task.advance(description="report: drawing charts", step_event="read",
                     day=data.day, dates=len(data.dates))  # fmt: skip
        page = render_html(data)
        task.advance(description="report: writing", step_event="render")
        write_html(html_path, page)
        task.advance(
            description="report: done",
            step_event="write",
            path=html_path,
            bytes=Path(html_path).stat().st_size,
        )
    return data
