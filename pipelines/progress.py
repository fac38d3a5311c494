"""Progress for long commands: a Rich bar in a terminal, structured log lines otherwise.

A person at a terminal wants to see that a 30-day backfill is moving and how long is left; the
nightly scheduler wants one parseable line per step in its log, with no cursor tricks or colour
codes in it. So the format follows where the progress goes (stderr):

- `rich`  — a live progress bar (stderr is a terminal);
- `plain` — logfmt lines, `ts=… level=info event=backfill_day day=2026-10-08 done=1 total=3 …`;
- `json`  — the same fields as one JSON object a line, for log shippers.

`EXPSCORE_LOG_FORMAT` (auto | rich | plain | json) overrides the choice; `auto` is the default.
Results meant for the reader (the per-day summary) still go to stdout in every format, so a pipe
or a cron mail gets the same lines it got before.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from pipelines.errors import InputError

LogFormat = Literal["rich", "plain", "json"]
ENV_VAR = "EXPSCORE_LOG_FORMAT"
FORMATS: tuple[str, ...] = ("auto", "rich", "plain", "json")


def resolve_format(stream: TextIO, env: Mapping[str, str] | None = None) -> LogFormat:
    """The format for progress written to `stream`: the env override, else rich on a TTY."""
    value = (os.environ if env is None else env).get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in FORMATS:
        raise InputError(f"{ENV_VAR}={value!r}: expected one of {', '.join(FORMATS)}")
    if value == "auto":
        isatty = getattr(stream, "isatty", None)
        return "rich" if isatty is not None and isatty() else "plain"
    return value  # type: ignore[return-value]


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _logfmt_value(value: Any) -> str:
    text = "null" if value is None else str(value)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_event(
    fmt: LogFormat, event: str, fields: Mapping[str, Any], level: str = "info", ts: str = ""
) -> str:
    """One log line (without newline) for `event` in the plain (logfmt) or json format."""
    record = {"ts": ts or _utc_now(), "level": level, "event": event, **fields}
    if fmt == "json":
        return json.dumps(record, ensure_ascii=False, default=str)
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in record.items())


@dataclass
class Reporter:
    """Writes progress to `stream` (stderr by default) in the resolved format.

    `clock` returns UTC ISO timestamps for log lines; tests pass a fixed one.
    """

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    fmt: LogFormat | None = None
    clock: Callable[[], str] = _utc_now

    def __post_init__(self) -> None:
        if self.fmt is None:
            self.fmt = resolve_format(self.stream)

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        """A structured line in plain/json; nothing in rich mode (the bar says it)."""
        if self.fmt == "rich":
            return
        assert self.fmt is not None
        self.stream.write(format_event(self.fmt, event, fields, level, self.clock()) + "\n")
        self.stream.flush()

    @contextmanager
    def task(self, name: str, total: int, description: str = "", **fields: Any) -> Iterator[Task]:
        """A unit of work with `total` steps. Logs `<name>_start` (with `fields`),
        `<name>_done` (or `<name>_failed` with how far it got, then re-raises) around it."""
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
                seconds=round(time.perf_counter() - started, 3),
            )
            raise
        self.event(
            f"{name}_done",
            done=task.done,
            total=total,
            seconds=round(time.perf_counter() - started, 3),
        )


@dataclass
class Task:
    """Steps of one `Reporter.task`: `advance` logs `<name>_<step_event>` or moves the bar."""

    reporter: Reporter
    name: str
    total: int
    done: int = 0
    _progress: Any = None
    _task_id: Any = None

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

        console = Console(file=self.reporter.stream, stderr=self.reporter.stream is sys.stderr)
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

    def describe(self, description: str) -> None:
        """Say what is running now (rich only; log lines are written when a step ends)."""
        if self._progress is not None:
            self._progress.update(self._task_id, description=description)


# --------------------------------------------------------------------------------------------
# backfill


def _day_fields(result: Any) -> dict[str, Any]:
    """The numbers of one run worth a log line: counts from the manifest, stage seconds."""
    outputs = result.manifest["outputs"]
    rejected = sum(sum(r.values()) for r in result.manifest["rejected_by_reason"].values())
    return {
        "day": result.run_date.isoformat(),
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
        following = result.run_date + dt.timedelta(days=1)
        upcoming = f"backfill {following}" if following <= self.last else "backfill done"
        self.task.advance(description=upcoming, step_event="day", **_day_fields(result))


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
