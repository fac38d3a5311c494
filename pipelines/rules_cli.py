"""`expscore rules check FILE` and `expscore rules schema`: the rules file before a run uses it.

`check` validates a rules file exactly as `run` does (`pipelines.run.load_rules`) but prints
every problem on its own line, so a file with three mistakes needs one edit, not three runs.
`schema` writes the JSON Schema generated from the one definition of the file
(`scoring.rules.RulesFile`); docs/rules.schema.json is its output (`make schema`), for editors
that check a TOML file while it is typed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines import logs
from pipelines.options import LogFormatOption, use_log_format
from pipelines.publish import write_text_atomic
from pipelines.run import RulesFileError, load_rules
from scoring.rules import rules_json_schema

rules_app = typer.Typer(
    help="Check a rules file, or print the JSON Schema of rules files.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def schema_text() -> str:
    """The JSON Schema as docs/rules.schema.json holds it: indented, one trailing newline."""
    return json.dumps(rules_json_schema(), indent=2, ensure_ascii=False) + "\n"


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
    overrides = len(rules.categories)
    typer.echo(
        f"rules file {file}: ok (version {rules.version}, {overrides} category "
        f"override{'s' * (overrides != 1)}, sha256 {rules.sha256})"
    )


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
