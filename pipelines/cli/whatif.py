"""`expscore whatif`: the impact of a candidate rules file on one date, added to the `expscore` app.

The what-if itself is `pipelines.analyst.whatif` (its docstring says what it compares and what it
reads); this module parses the options, runs it and prints the summary. `register(app)` is called
once at the end of pipelines/cli/main.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.analyst.whatif import check_report_paths, write_whatif
from pipelines.analyst.whatif_format import summary_lines
from pipelines.config import DEFAULT_OUT, DEFAULT_RAW
from pipelines.options import LogFormatOption, parse_date, use_log_format


def whatif(
    rules: Annotated[Path, typer.Option("--rules", help="The candidate (new) rules TOML file.")],
    base: Annotated[
        Path | None,
        typer.Option("--base", help="The rules in force (default: the shipped rules)."),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option("--date", help="Business date YYYY-MM-DD (default: latest raw dt)."),
    ] = None,
    raw: Annotated[
        Path, typer.Option("--raw", help="Raw logs: <raw>/<log>/dt=YYYY-MM-DD/*.parquet.")
    ] = DEFAULT_RAW,
    out: Annotated[
        Path,
        typer.Option("--out", help="Published output, read only for D-1's labels and weights."),
    ] = DEFAULT_OUT,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write the report as one HTML file.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON (for review tools).")
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """What-if: score a date under the base and the new rules, show who wins and who loses.

    Publishes nothing; --out is only read (D-1's labels and weights, as a run would).
    """
    use_log_format(log_format)
    check_report_paths(out, html_path, json_path)
    report = write_whatif(raw, out, rules, base, parse_date(date), html_path, json_path)
    typer.echo("\n".join(summary_lines(report)))


def register(app: typer.Typer) -> None:
    """Add the `whatif` command to the `expscore` app."""
    app.command("whatif")(whatif)
