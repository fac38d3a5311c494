"""`expscore bench`: the benchmark harness's command, added to the `expscore` app.

The harness itself is `pipelines.devtools.bench` (its docstring says what each scenario measures);
this module parses the options, runs it, prints the short table and says where the JSON went.
Progress lines go to stderr. `register(app)` is called once at the end of pipelines/cli/main.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.devtools.bench import (
    DEFAULT_SEED,
    SCALES,
    SKIPPABLE,
    default_limits,
    format_table,
    run_bench,
    write_json,
)
from pipelines.options import LogFormatOption, use_log_format


def _scale(value: str) -> str:
    """The scale's key, whatever the case it was typed in (`mid`, `MID`, `m`)."""
    name = next((key for key in SCALES if key.upper() == value.strip().upper()), None)
    if name is None:
        visible = "|".join(s for s, sc in SCALES.items() if not sc.hidden)
        raise typer.BadParameter(f"{value!r} is not a scale; use {visible}")
    return name


def _names(values: list[str] | None) -> list[str]:
    """Comma-separated values of a repeatable option, split and stripped."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _skip(values: list[str] | None) -> list[str]:
    names = _names(values)
    unknown = sorted(set(names) - set(SKIPPABLE))
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: use any of {', '.join(SKIPPABLE)}")
    return names


def _window_days(values: list[str] | None) -> list[str]:
    names = _names(values)
    try:
        days = sorted({int(n) for n in names})
    except ValueError as exc:
        raise typer.BadParameter(f"{', '.join(names)}: whole numbers of days, e.g. 30,60") from exc
    if names and (len(days) < 2 or days[0] < 1 or days[-1] > 90):
        raise typer.BadParameter("at least two different window lengths of 1 to 90 days")
    return [str(d) for d in days]


def bench(
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            callback=_scale,
            help="S: 200 shops, 2k orders/day. mid: 20k shops, 100k orders/day (issue 19's "
            "peer targets). M: 200k shops, 1M orders/day (issue 19's other targets; generation "
            "~10 min, ~11 GB of logs for 61 days, ~110 GiB of disk at the peak with the window "
            "runs, ~65 GiB without). L: 2M shops, 10M orders/day (generation ~2 h). Each: a "
            "30-day window + 1 new day, and the days the window runs need.",
        ),
    ] = "S",
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Runs of each scenario; medians are reported.")
    ] = 3,
    backfill_repeats: Annotated[
        int | None,
        typer.Option(
            "--backfill-repeats",
            min=0,
            help="Backfill runs (default: --repeats); 0 reuses the backfill output of an earlier "
            "invocation (only valid if the code has not changed since).",
        ),
    ] = None,
    work: Annotated[
        Path,
        typer.Option(
            "--work",
            help="Generated data and run outputs (reused: data is generated once per scale/seed).",
        ),
    ] = Path(".bench"),
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Where the JSON result goes (default <work>/bench-<scale>.json)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = DEFAULT_SEED,
    max_rss_gib: Annotated[
        float | None,
        typer.Option(
            "--max-rss-gib",
            min=0.1,
            help="Kill a run whose RSS passes this and report it failed (default: 90% of RAM).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Kill a run after this many seconds (failed)."),
    ] = None,
    disk_check: Annotated[
        bool,
        typer.Option(
            "--disk-check/--no-disk-check",
            help="Refuse to start when the disk under --work looks too small for the scale "
            "(estimated from the sizes measured at M).",
        ),
    ] = True,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            callback=_skip,
            help="Scenarios not to run, comma-separated or repeated: "
            + ", ".join(SKIPPABLE)
            + " (the runs that start from the backfill's output are skipped with it; the "
            "JSON lists what was skipped).",
        ),
    ] = None,
    window_days: Annotated[
        list[str] | None,
        typer.Option(
            "--window-days",
            callback=_window_days,
            help="Window lengths the window runs compare, e.g. 30,60 (default: the scale's "
            "window and twice it); the longest sets the days generated (61 for 60).",
        ),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Measure issue 19's targets: backfill, nightly, from scratch, Ray, the SQL peer and the
    window lengths, each against the floor of reading the input once.

    Every scenario runs in its own process (wall, CPU, peak RSS of that process); stage times
    come from the run manifests. Prints a short table with each target's figure and verdict and
    writes a JSON result. Not a test: CI does not run it.
    """
    use_log_format(log_format)
    chosen = SCALES[scale]

    def echo(message: str) -> None:
        typer.echo(message, err=True)

    result = run_bench(
        chosen,
        work,
        repeats,
        backfill_repeats,
        seed,
        echo,
        default_limits(max_rss_gib, timeout),
        disk_check,
        skip=skip or (),
        window_days=[int(d) for d in window_days] if window_days else None,
    )
    target = json_path or work / f"bench-{chosen.name}.json"
    write_json(result, target)
    typer.echo(format_table(result))
    typer.echo(f"JSON: {target}")


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the `expscore` app."""
    app.command("bench")(bench)
