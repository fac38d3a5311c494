"""`expscore rules check FILE` and `expscore rules schema`: the rules file before a run uses it.

`check` validates a rules file exactly as `run` does (`pipelines.nightly.run.load_rules`) but prints
every problem on its own line, so a file with three mistakes needs one edit, not three runs; a
good file gets a summary, with a line per exemption as the run will read it (a local `ship_by`
shown with the instant it became), since that reading is the one thing the file does not spell
out.
`schema` writes the JSON Schema generated from the one definition of the file
(`scoring.rules.RulesFile`); docs/rules.schema.json is its output (`make schema`), for editors
that check a TOML file while it is typed.
"""

from __future__ import annotations

import json
import zoneinfo
from pathlib import Path
from typing import Annotated

import typer

from pipelines import logs
from pipelines.nightly.publish import write_text_atomic
from pipelines.nightly.run import RulesFileError, load_rules
from pipelines.options import LogFormatOption, use_log_format
from scoring.rules import ExemptionRule, Rules, rules_json_schema

rules_app = typer.Typer(
    help="Check a rules file, or print the JSON Schema of rules files.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def schema_text() -> str:
    """The JSON Schema as docs/rules.schema.json holds it: indented, one trailing newline."""
    return json.dumps(rules_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def exemption_line(exemption: ExemptionRule, time_zone: str) -> str:
    """One exemption for a person checking the file: its dates in the rules' time zone, whom it
    reaches (refunds and sessions carry no region, so a region list reaches orders only), its
    ship_by both in that zone and as the UTC instant, and the indicators it excludes."""
    regions = f"{', '.join(exemption.regions)} (orders only)" if exemption.regions else "all"
    if exemption.ship_by is None:
        ship_by = "none"
    else:
        local = exemption.ship_by.astimezone(zoneinfo.ZoneInfo(time_zone)).replace(tzinfo=None)
        instant = exemption.ship_by.replace(tzinfo=None).isoformat()
        ship_by = f"{local.isoformat()} {time_zone} = {instant}Z"
    return (
        f"  exemption {exemption.name}: {exemption.paid_from} to {exemption.paid_to} "
        f"(local dates, {time_zone}); regions: {regions}; ship_by: {ship_by}; "
        f"excluded from: {', '.join(exemption.exclude_from) or 'none'}"
    )


def summary_lines(file: Path, rules: Rules) -> list[str]:
    """What `check` prints for a good file: one line, then a line per exemption."""
    return [
        f"rules file {file}: ok (version {rules.version}, "
        f"{_plural(len(rules.categories), 'category override')}, "
        f"{_plural(len(rules.exemptions), 'exemption')}, sha256 {rules.sha256})",
        *(exemption_line(e, rules.timezone) for e in rules.exemptions),
    ]


@rules_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The rules TOML file to check.")],
    log_format: LogFormatOption = None,
) -> None:
    """Print every problem of a rules file, each with its key path; exit 2 when there is one.

    The same validation as `run --rules FILE`.
    """
    use_log_format(log_format)
    try:
        rules = load_rules(file)
    except RulesFileError as exc:
        for line in exc.lines:  # one error line per problem (a JSON event each with JSON logs)
            logs.say("error", line, exc.exit_code)
        raise typer.Exit(exc.exit_code) from None
    typer.echo("\n".join(summary_lines(file, rules)))


@rules_app.command("schema")
def schema(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the schema to this file (default: stdout)."),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Print the JSON Schema of rules files (docs/rules.schema.json is its output)."""
    use_log_format(log_format)
    if out is None:
        typer.echo(schema_text(), nl=False)
    else:
        write_text_atomic(out, schema_text())
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add the `rules` commands to the expscore app."""
    app.add_typer(rules_app, name="rules")
