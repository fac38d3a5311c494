"""`expscore`: the nightly command line.

Exit codes: 0 success; 1 an internal error; 2 bad input or usage (the message names file, column
or key); 3 a quality gate held publication; 4 another run holds the output folder. Errors are one
line on stderr, never a traceback (set EXPSCORE_DEBUG=1 to see one).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from pipelines import logs
from pipelines.config import DEFAULT_OUT, DEFAULT_RAW, MAX_SHARDS, debug
from pipelines.errors import ExpscoreError
from pipelines.executors import ExecutorOptions
from pipelines.nightly.run import RunResult, StateOptions, backfill, load_rules, run_day
from pipelines.options import LogFormatOption, parse_date, use_log_format
from pipelines.version import code_version
from scoring.catalog import BANDS

app = typer.Typer(
    help="Shop and product experience scores: load raw logs, score, publish Parquet tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_text() -> str:
    """`expscore <package version>`, with the git commit when run from a checkout."""
    version = code_version()
    commit = f" (commit {version.commit}{', modified' if version.dirty else ''})"
    return f"expscore {version.package}" + (commit if version.commit else "")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    log_format: LogFormatOption = None,
) -> None:
    """Shop and product experience scores: load raw logs, score, publish Parquet tables."""
    # one logging setup for every command: a run id, the command's name, the line format (every
    # command takes --log-format too, which switches it)
    logs.setup(ctx.invoked_subcommand, None if log_format is None else log_format.value)


RawOption = Annotated[
    Path, typer.Option("--raw", help="Raw logs: <raw>/<log>/dt=YYYY-MM-DD/*.parquet.")
]
OutOption = Annotated[
    Path, typer.Option("--out", help="Where the tables go: <out>/<table>/dt=YYYY-MM-DD/.")
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Publish even when a quality gate fails (recorded in the manifest)."
    ),
]
RebuildOption = Annotated[
    bool,
    typer.Option(
        "--rebuild",
        help="Start the window state over: rebuild it from raw first.",
    ),
]
ShardsOption = Annotated[
    int | None,
    typer.Option(
        "--shards",
        min=1,
        max=MAX_SHARDS,
        help="Shards of the window state, by order and session id (default: the state's, or "
        "about 4M order versions each when it is first built); another number rebuilds it.",
    ),
]
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="What runs the shard tasks: local (this process), processes (a local pool) or ray.",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Processes of --executor processes (default: cores)."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster of --executor ray, e.g. ray://head:10001 (default: RAY_ADDRESS, else "
        "a local Ray).",
    ),
]
ExchangeOption = Annotated[
    str | None,
    typer.Option(
        "--exchange",
        help="Folder or object-store URI (s3://bucket/prefix) for the rows and sums passed "
        "to and from the shard tasks; every worker must reach it (default: under the state).",
    ),
]
StateOption = Annotated[
    str | None,
    typer.Option(
        "--state",
        help="Folder or object-store URI of the window state; every worker must reach it "
        "(default: <out>/.state).",
    ),
]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", help="Rules TOML file (default: the shipped rules of SCORING.md 11)."),
]


def summary_lines(result: RunResult) -> list[str]:
    """A short human summary of one run: what a scheduler log or an operator wants to see."""
    shops = result.tables["shop_scores"]
    scored = shops.filter(pl.col("status") == "scored")
    lines = [
        f"expscore {result.run_date}: {shops.height} shops ({scored.height} scored), "
        f"{result.tables['item_scores'].height} items"
    ]
    if scored.height:
        counts = dict(scored.group_by("band").len().rows())  # at most five rows
        lines.append(
            "  bands: "
            + ", ".join(f"{b} {counts[b] / scored.height:.1%}" for b in BANDS if b in counts)
        )
    labels = result.tables["shop_labels"]
    if labels.height:
        counts = labels.group_by("label").len().sort("label")
        lines.append(
            "  labels: "
            + ", ".join(f"{lab} {n}" for lab, n in zip(counts["label"], counts["len"], strict=True))
        )
    else:
        lines.append("  labels: none")
    rejected = result.manifest["rejected_by_reason"]
    total = sum(sum(r.values()) for r in rejected.values())
    detail = "; ".join(
        f"{log}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items())
        for log, reasons in rejected.items()
    )
    lines.append(f"  quarantined: {total} rows" + (f" ({detail})" if detail else ""))
    if not any(result.manifest.get("previous", {}).values()):
        day_before = result.run_date - dt.timedelta(days=1)
        lines.append(f"  D-1 ({day_before}) was not published: no label held, weights not clamped")
    failed = [g["message"] for g in result.manifest["gates"] if not g["passed"]]
    if failed:
        lines.append("  FORCED past failed gates: " + "; ".join(failed))
    lines.append(f"  tables: {result.out}/<table>/dt={result.run_date}/")
    return lines


def state_options(
    rebuild: bool,
    shards: int | None,
    executor: str,
    workers: int | None,
    ray_address: str | None,
    exchange: str | None,
    state: str | None = None,
) -> StateOptions:
    """The state and executor options of `run` and `backfill`, checked together."""
    return StateOptions(
        rebuild=rebuild,
        shards=shards,
        executor=ExecutorOptions(executor, workers, ray_address, exchange),
        location=state,
    )


@app.command()
def run(
    date: Annotated[
        str | None,
        typer.Option("--date", help="Business date YYYY-MM-DD (default: latest raw dt)."),
    ] = None,
    raw: RawOption = DEFAULT_RAW,
    out: OutOption = DEFAULT_OUT,
    rules: RulesOption = None,
    force: ForceOption = False,
    rebuild: RebuildOption = False,
    shards: ShardsOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    exchange: ExchangeOption = None,
    state: StateOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Score one business date and publish its tables, quarantine and manifest."""
    from pipelines.progress import run_progress

    use_log_format(log_format)
    day = parse_date(date, "--date")
    fields = {
        "date": day,
        "raw": raw,
        "out": out,
        "rules": rules or "default",
        "executor": executor,
    }
    with run_progress(fields) as progress:
        result = run_day(
            raw,
            out,
            load_rules(rules),
            day,
            force=force,
            state=state_options(rebuild, shards, executor, workers, ray_address, exchange, state),
            on_stage=progress.stage,
        )
        progress.finished(result)
    typer.echo("\n".join(summary_lines(result)))


@app.command("backfill")
def backfill_command(
    start: Annotated[str, typer.Option("--start", help="First business date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last business date, YYYY-MM-DD.")],
    raw: RawOption = DEFAULT_RAW,
    out: OutOption = DEFAULT_OUT,
    rules: RulesOption = None,
    force: ForceOption = False,
    rebuild: RebuildOption = False,
    shards: ShardsOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    exchange: ExchangeOption = None,
    state: StateOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run every date from --start to --end in order (labels and weights carry over).

    A date whose window has no partition of any log is skipped with a line saying so; the
    backfill goes on (exit 2 only when every date was skipped).
    """
    from pipelines.progress import backfill_progress

    use_log_format(log_format)
    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    with backfill_progress(first, last) as progress:
        backfill(
            raw,
            out,
            load_rules(rules),
            first,
            last,
            on_day=lambda r: progress.day_done(r, summary_lines(r)[0]),
            force=force,
            state=state_options(rebuild, shards, executor, workers, ray_address, exchange, state),
            on_skip=progress.day_skipped,
        )


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the raw logs.")],
    start: Annotated[str, typer.Option("--start", help="First business date, YYYY-MM-DD.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Number of days.")] = 40,
    shops: Annotated[int, typer.Option("--shops", min=1, help="Number of shops.")] = 300,
    orders_per_day: Annotated[
        int, typer.Option("--orders-per-day", min=1, help="Orders paid per day.")
    ] = 3000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 7,
    bad_rows: Annotated[
        float,
        typer.Option(
            "--bad-rows",
            min=0.0,
            max=0.5,
            help="Share of each partition's rows broken on purpose, each for one quarantine "
            "reason (at least one row a partition); 0 writes clean data.",
        ),
    ] = 0.002,
    log_format: LogFormatOption = None,
) -> None:
    """Write realistic synthetic raw logs in the spec's layout."""
    from pipelines.devtools.generate import generate_raw

    use_log_format(log_format)

    day = parse_date(start, "--start")
    counts = generate_raw(out, day, days, shops, orders_per_day, seed, bad_rows=bad_rows)
    typer.echo(f"wrote {out}: " + ", ".join(f"{log} {n:,} rows" for log, n in counts.items()))


def main() -> None:
    """Console entry point: run the app, turning known failures into one line and an exit code."""
    try:
        _main()
    finally:
        logs.teardown()


def _main() -> None:
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except ExpscoreError as exc:
        logs.say("error", str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        if getattr(exc, "code", None) == 130:  # typer turns Ctrl-C into exit 130, silently
            logs.say("interrupted", code=130)
        raise exc
    except (typer.Abort, KeyboardInterrupt):
        logs.say("interrupted", code=130)
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if logs.is_interrupt(exc):
            logs.say("interrupted", code=130)
            sys.exit(130)
        if debug():
            raise
        logs.say("internal error", f"{type(exc).__name__}: {exc}", 1)
        sys.exit(1)


from pipelines.cli import analyst as analyst_cli  # noqa: E402

analyst_cli.register(app)

from pipelines.cli import whatif as whatif_cli  # noqa: E402

whatif_cli.register(app)

from pipelines.cli import bench as bench_cli  # noqa: E402

bench_cli.register(app)

from pipelines.cli import rules as rules_cli  # noqa: E402

rules_cli.register(app)
