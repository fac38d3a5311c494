"""The analyst commands `explain`, `query` and `report`, added to the `expscore` app.

They live apart from pipelines/cli/main.py so the nightly commands stay small; `register(app)` is
called once at the end of cli.py. Errors are `InputError`s, which the CLI's `main()` turns into
one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.config import DEFAULT_OUT
from pipelines.errors import InputError
from pipelines.options import LogFormatOption, parse_date, use_log_format

OutOption = Annotated[
    Path, typer.Option("--out", help="Published tables: <out>/<table>/dt=YYYY-MM-DD/.")
]
DateOption = Annotated[
    str | None,
    typer.Option("--date", help="Business date YYYY-MM-DD (default: the latest published)."),
]


def explain(
    shop: Annotated[int | None, typer.Option("--shop", help="Shop id to explain.")] = None,
    item: Annotated[
        int | None, typer.Option("--item", help="Item id: explain its product score (PXI).")
    ] = None,
    date: DateOption = None,
    out: OutOption = DEFAULT_OUT,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="Rules TOML that scored the date (default: the shipped rules); its knots give "
            "the next-tier targets.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of plain text.")] = False,
    log_format: LogFormatOption = None,
) -> None:
    """Take a shop's score (or an item's PXI) apart, with next-tier targets.

    Each indicator with numerator/denominator, smoothed value, score and points lost, sorted by
    points lost, and the next-tier target [下一档目标值]: the smoothed value that lifts it to its
    next knot.
    """
    from pipelines.analyst.explain import explain_item, explain_shop, to_json_text
    from pipelines.nightly.run import load_rules

    use_log_format(log_format)
    if (shop is None) == (item is None):
        raise InputError("explain: give exactly one of --shop ID or --item ID")
    loaded = load_rules(rules)
    explanation = (
        explain_shop(out, shop, parse_date(date), loaded)
        if shop is not None
        else explain_item(out, item, parse_date(date), loaded)  # type: ignore[arg-type]
    )
    typer.echo(to_json_text(explanation) if as_json else explanation.to_text())


def query(
    sql: Annotated[str, typer.Argument(help="SQL (DuckDB dialect) over the published tables.")],
    out: OutOption = DEFAULT_OUT,
    csv: Annotated[bool, typer.Option("--csv", help="Write the result as CSV to stdout.")] = False,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="Write the result to this Parquet file.")
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows shown in the table output.")
    ] = 50,
    log_format: LogFormatOption = None,
) -> None:
    """Run SQL (DuckDB) over the published tables.

    Views: shop_scores, shop_indicators, item_scores, shop_labels, shop_traffic_weights,
    item_traffic_weights, quarantine (each with `dt` DATE, all dates) and manifests
    (dt, held, status, run_id, code_version, started_at, finished_at, rules_version,
    rules_sha256, previous_run_id, manifest JSON).
    """
    from pipelines.analyst.query import format_table, run_query, write_csv, write_parquet

    use_log_format(log_format)
    if csv and parquet is not None:
        raise InputError("query: give --csv or --parquet, not both")
    result = run_query(out, sql)
    if result is None:
        typer.echo("ok (no result)")
    elif parquet is not None:
        write_parquet(result, parquet)
        typer.echo(f"wrote {parquet}: {result.num_rows} rows, {result.num_columns} columns")
    elif csv:
        write_csv(result)
    else:
        typer.echo(format_table(result, max_rows))


def report(
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    date: DateOption = None,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Days of history in the time charts.")
    ] = 30,
    out: OutOption = DEFAULT_OUT,
    log_format: LogFormatOption = None,
) -> None:
    """Write a self-contained HTML report with charts (opens offline).

    Score distribution, band shares over --days, dimension and indicator distributions, biggest
    movers, labels gained and lost, quarantine counts.
    """
    from pipelines.analyst.report import HEADLINE_BAND, write_report

    use_log_format(log_format)
    data = write_report(out, html, parse_date(date), days)
    shares = data.band_shares.filter(
        (data.band_shares["dt"] == data.day) & (data.band_shares["band"] == HEADLINE_BAND)
    )
    share = f"{shares['share'].sum():.1%}" if data.band_shares.height else "-"
    typer.echo(f"wrote {html}: {data.day}, {len(data.dates)} dates, {HEADLINE_BAND} share {share}")


def register(app: typer.Typer) -> None:
    """Add `explain`, `query` and `report` to the expscore app."""
    app.command("explain")(explain)
    app.command("query")(query)
    app.command("report")(report)
