"""Progress for long commands: a Rich bar in a terminal, structured log lines otherwise.

A person at a terminal wants to see that a 30-day backfill is moving and how long is left; the
nightly scheduler wants one parseable line per step in its log, with no cursor tricks or colour
codes in it. The lines go through the one logging setup of every command (pipelines/logs.py),
so they carry the run id and the command and follow its format:

- `rich` — a live progress bar (stderr is a terminal);
- `text` — logfmt lines, `ts=… level=info event=backfill_day run_id=… command=backfill day=…`;
- `json` — the same fields as one JSON object a line, for log shippers.

`--log-format` (text | json) or `EXPSCORE_LOG_FORMAT` (auto | text | json | rich) choose it.
Results meant for the reader (the per-day summary) still go to stdout in every format, so a pipe
or a cron mail gets the same lines it got before.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from pipelines import logs
from pipelines.logs import LogFormat


@dataclass
class Reporter:
    """Reports a command's progress: events through the logging setup, or a bar.

    `fmt` defaults to the running setup's format; `stream` is where a bar draws (stderr).
    """

    fmt: LogFormat | None = None
    stream: TextIO | None = None

    def __post_init__(self) -> None:
        if self.fmt is None:
            self.fmt = logs.current_format(self.stream)

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        """A structured line in text/json; nothing in rich mode (the bar says it)."""
        if self.fmt == "rich":
            return
        logs.event(event, level, **fields)

    @contextmanager
    def task(self, name: str, total: int, description: str = "", **fields: Any) -> Iterator[Task]:
        """A unit of work with `total` steps. Logs `<name>_start` (with `fields`),
        `<name>_done` (with what `Task.result` added) or `<name>_failed` (how far it got, the
        error, its message and exit code; then re-raises) around it."""
        started = time.perf_counter()
        task = Task(self, name, total)
        self.event(f"{name}_start", total=total, **fields)
        try:
            if self.fmt == "rich":
                with task.live(description or name):
                    yield task
            else:
                yield task
        except BaseException as exc:
            self.event(
                f"{name}_failed",
                level="error",
                done=task.done,
                total=total,
                error=type(exc).__name__,
                exit_code=logs.exit_code_of(exc),
                message=" ".join(str(exc).split()),
                seconds=round(time.perf_counter() - started, 3),
            )
            raise
        self.event(
            f"{name}_done",
            done=task.done,
            total=total,
            seconds=round(time.perf_counter() - started, 3),
            **task.results,
        )


@dataclass
class Task:
    """Steps of one `Reporter.task`: `advance` logs `<name>_<step_event>` or moves the bar."""

    reporter: Reporter
    name: str
    total: int
    done: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    _progress: Any = None
    _task_id: Any = None

    def result(self, **fields: Any) -> None:
        """Fields for the task's `<name>_done` line (what the work came to)."""
        self.results.update(fields)

    @contextmanager
    def live(self, description: str) -> Iterator[None]:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        stream = self.reporter.stream or sys.stderr
        console = Console(file=stream, stderr=stream is sys.stderr)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            # summaries printed to stdout go above the bar, but only when stdout is the same
            # terminal: a piped stdout must keep its lines
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=False,
        )
        self._progress = progress
        with progress:
            self._task_id = progress.add_task(description, total=self.total)
            yield

    def advance(
        self, description: str | None = None, step_event: str = "step", **fields: Any
    ) -> None:
        """One step done: `fields` go into the log line; `description` names the next step."""
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task_id, advance=1, description=description)
        else:
            self.reporter.event(
                f"{self.name}_{step_event}", done=self.done, total=self.total, **fields
            )


# --------------------------------------------------------------------------------------------
# backfill


def day_fields(result: Any) -> dict[str, Any]:
    """The numbers of one run worth a log line: counts from the manifest, stage seconds."""
    outputs = result.manifest["outputs"]
    rejected = sum(sum(r.values()) for r in result.manifest["rejected_by_reason"].values())
    return {
        "day": result.run_date.isoformat(),
        "status": result.manifest["status"],
        "shops": outputs["shop_scores"]["rows"],
        "items": outputs["item_scores"]["rows"],
        "quarantined": rejected,
        **{f"{stage}_s": seconds for stage, seconds in result.timings.items()},
    }


@dataclass
class BackfillProgress:
    """The `on_day` side of a backfill: prints the day's summary to stdout, then reports."""

    task: Task
    last: dt.date

    def day_done(self, result: Any, summary: str) -> None:
        sys.stdout.write(summary + "\n")  # resolved now: Rich may have redirected it
        sys.stdout.flush()
        self.task.advance(
            description=self._upcoming(result.run_date), step_event="day", **day_fields(result)
        )
        self.task.result(published=self.task.results.get("published", 0) + 1)

    def day_skipped(self, day: dt.date, reason: str) -> None:
        """A date whose window has no input: a summary line, a `backfill_skipped` event, on."""
        sys.stdout.write(f"expscore {day}: skipped, no partition of any log in its window\n")
        sys.stdout.flush()
        self.task.advance(
            description=self._upcoming(day), step_event="skipped", day=day, reason=reason
        )
        self.task.result(skipped=self.task.results.get("skipped", 0) + 1)

    def _upcoming(self, day: dt.date) -> str:
        following = day + dt.timedelta(days=1)
        return f"backfill {following}" if following <= self.last else "backfill done"


@contextmanager
def backfill_progress(
    start: dt.date, end: dt.date, reporter: Reporter | None = None
) -> Iterator[BackfillProgress]:
    """Progress of a backfill from `start` to `end`; use `.day_done` as its `on_day`."""
    reporter = reporter or Reporter()
    total = max(0, (end - start).days + 1)
    with reporter.task(
        "backfill", total, description=f"backfill {start}", start=start, end=end
    ) as task:
        yield BackfillProgress(task, end)


# --------------------------------------------------------------------------------------------
# run


RUN_STAGES = ("state", "score", "publish")


@dataclass
class RunProgress:
    """The `on_stage` side of one run: a line (or a step of the bar) as each stage ends."""

    task: Task

    def stage(self, name: str, fields: dict[str, Any]) -> None:
        following = RUN_STAGES.index(name) + 1
        upcoming = f"run: {RUN_STAGES[following]}" if following < len(RUN_STAGES) else "run: done"
        self.task.advance(description=upcoming, step_event="stage", stage=name, **fields)

    def finished(self, result: Any) -> None:
        self.task.result(**day_fields(result))


@contextmanager
def run_progress(fields: dict[str, Any], reporter: Reporter | None = None) -> Iterator[RunProgress]:
    """Progress of one `run`: `run_start` (with `fields`), `run_stage` per stage (state, score,
    publish, each with its seconds and counts), then `run_done` with the day's numbers, or
    `run_failed` with the error and its exit code (a held run: `HeldError`, 3)."""
    reporter = reporter or Reporter()
    with reporter.task("run", len(RUN_STAGES), description="run: state", **fields) as task:
        yield RunProgress(task)
