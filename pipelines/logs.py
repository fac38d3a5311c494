"""One logging setup for every command: who is running (run id, command) and how lines look.

A scheduler runs `expscore run` at night and ships stderr to a log store; a person runs
`expscore backfill` in a terminal. Both want the same events, so every command goes through this
module once, at start-up (`setup`, called by the CLI's root callback):

- a **run id**, new for each invocation (`20261011T193002Z-1a2b3c4d`: sortable, unique), bound
  for the whole command. Every log line carries it, and the manifests `run` writes record it,
  so a manifest leads to the log lines of the run that wrote it and back;
- the **line format** of stderr, from `--log-format` (text | json), else `EXPSCORE_LOG_FORMAT`
  (auto | text | json | rich; `plain` is text), else auto: a progress bar on a terminal, text
  lines otherwise;
- one handler on the package's logger (`pipelines`), so structured events (`event()`) and plain
  `logging` records of any module (the window state's "rebuilt from raw" warning) come out in
  that one format, each with `ts`, `level`, `event`, `run_id` and `command`.

Text lines are logfmt (`ts=… level=info event=run_stage run_id=… command=run stage=score …`), JSON
lines one object each. Results meant for the reader (summaries, tables) go to stdout, never here.
Used as a library (no `setup`), nothing is configured: `logging`'s defaults apply and `run_day`
makes a run id of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from pipelines.config import LOG_FORMAT_VAR, environment
from pipelines.errors import ExpscoreError, InputError

LogFormat = Literal["rich", "text", "json"]
ENV_VAR = LOG_FORMAT_VAR
ENV_FORMATS: tuple[str, ...] = ("auto", "text", "json", "rich", "plain")
OPTION_FORMATS: tuple[str, ...] = ("text", "json")
LOGGER = "pipelines"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """`2026-10-11T19:30:02.123Z`: UTC, milliseconds, the form of every time this tool writes."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clock() -> str:
    return iso_utc(utc_now())


@dataclass(frozen=True)
class RunContext:
    """One invocation of a command: its run id, the command's name and when it started."""

    run_id: str
    command: str | None
    started_at: dt.datetime

    @classmethod
    def new(cls, command: str | None) -> RunContext:
        now = utc_now()
        return cls(f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}", command, now)


_context: ContextVar[RunContext | None] = ContextVar("expscore_run", default=None)


def bound() -> RunContext | None:
    """The context `setup` bound for this command, or None (library use)."""
    return _context.get()


def resolve_format(
    stream: TextIO, env: Mapping[str, str] | None = None, option: str | None = None
) -> LogFormat:
    """The format of lines written to `stream`: the option, the environment, else auto (a bar
    on a terminal, text otherwise). A value outside the known ones is a usage error (exit 2)."""
    if option is not None:
        value, where = option.strip().lower(), f"--log-format {option!r}"
        known = OPTION_FORMATS
    else:
        raw = environment(env).get(ENV_VAR, "auto")
        value, where, known = raw.strip().lower() or "auto", f"{ENV_VAR}={raw!r}", ENV_FORMATS
    if value not in known:
        raise InputError(f"{where}: expected one of {', '.join(known)}")
    if value == "auto":
        isatty = getattr(stream, "isatty", None)
        return "rich" if isatty is not None and isatty() else "text"
    return "text" if value == "plain" else value  # type: ignore[return-value]


def _logfmt_value(value: Any) -> str:
    text = "null" if value is None else str(value)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_event(
    fmt: LogFormat,
    event: str,
    fields: Mapping[str, Any],
    level: str = "info",
    ts: str = "",
    context: RunContext | None = None,
) -> str:
    """One log line (without newline): logfmt for text (and rich), one JSON object for json.

    `ts`, `level`, `event` come first, then the context's `run_id` and `command`, then `fields`.
    """
    record: dict[str, Any] = {"ts": ts or _clock(), "level": level, "event": event}
    if context is not None:
        record.update(run_id=context.run_id, command=context.command)
    record.update(fields)
    if fmt == "json":
        return json.dumps(record, ensure_ascii=False, default=str)
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in record.items())


class EventFormatter(logging.Formatter):
    """Formats both kinds of record: events (`event()`: a name and fields) and plain `logging`
    calls (event `log`, with the logger's name and the message)."""

    def __init__(self, fmt: LogFormat, clock: Callable[[], str] = _clock) -> None:
        super().__init__()
        self.fmt, self.clock = fmt, clock

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "expscore_event", None)
        if event is None:
            event, fields = "log", {"logger": record.name, "message": record.getMessage()}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = type(record.exc_info[1]).__name__
        else:
            fields = getattr(record, "expscore_fields", {})
        level = record.levelname.lower()
        return format_event(self.fmt, event, fields, level, self.clock(), bound())


@dataclass
class _Setup:
    handler: logging.Handler
    fmt: LogFormat
    stream: TextIO
    clock: Callable[[], str]


_setup: _Setup | None = None


def _install(fmt: LogFormat, stream: TextIO, clock: Callable[[], str]) -> None:
    global _setup
    logger = logging.getLogger(LOGGER)
    if _setup is not None:
        logger.removeHandler(_setup.handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EventFormatter(fmt, clock))
    # with a progress bar, the bar is the progress: only warnings and errors are written as lines
    handler.setLevel(logging.WARNING if fmt == "rich" else logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one line per record, whatever the root logger has
    _setup = _Setup(handler, fmt, stream, clock)


def setup(
    command: str | None,
    option: str | None = None,
    stream: TextIO | None = None,
    clock: Callable[[], str] = _clock,
) -> RunContext:
    """Start a command: bind a new run context and send the package's log records to `stream`
    (stderr) in the resolved format. Calling it again replaces the previous setup."""
    stream = stream or sys.stderr
    fmt = resolve_format(stream, option=option)
    context = RunContext.new(command)
    _context.set(context)
    _install(fmt, stream, clock)
    return context


def use_format(option: str | None) -> None:
    """A command's `--log-format`: switch the running setup to it (None: keep the setup's)."""
    if option is None or _setup is None:
        return
    _install(resolve_format(_setup.stream, option=option), _setup.stream, _setup.clock)


def teardown() -> None:
    """Undo `setup`: no context bound, the handler removed (the CLI calls it on exit, so that
    in-process callers, the tests, start clean)."""
    global _setup
    _context.set(None)
    if _setup is not None:
        logger = logging.getLogger(LOGGER)
        logger.removeHandler(_setup.handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        _setup = None


def active_format() -> LogFormat | None:
    """The format of the running setup, None without one."""
    return None if _setup is None else _setup.fmt


def current_format(stream: TextIO | None = None) -> LogFormat:
    """The format of the running setup; without one, what the environment says for `stream`."""
    if _setup is not None:
        return _setup.fmt
    return resolve_format(stream or sys.stderr)


def event(name: str, level: str = "info", **fields: Any) -> None:
    """Log one structured event: `name` and its fields, with the run's id and command."""
    logging.getLogger(LOGGER).log(
        LEVELS[level], name, extra={"expscore_event": name, "expscore_fields": fields}
    )


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, or DuckDB's own error for a query it cancelled on SIGINT (an
    InterruptException, or "Query interrupted" through an Arrow stream)."""
    import duckdb

    return (
        isinstance(exc, KeyboardInterrupt | duckdb.InterruptException)
        or str(exc) == "Query interrupted"
    )


def say(kind: str, message: str = "", code: int = 1) -> None:
    """A line that ends a command: `expscore: <kind>: <message>` on stderr; with JSON logs an
    `error` event instead (`kind`, `message`, `exit_code`), so that every line of stderr parses."""
    if active_format() == "json":
        event("error", level="error", kind=kind, message=message, exit_code=code)
    else:
        text = f"expscore: {kind}: {message}" if message else f"expscore: {kind}"
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def exit_code_of(exc: BaseException) -> int:
    """The exit code the CLI gives for `exc` (README, "Exit codes"), for failure events."""
    if isinstance(exc, ExpscoreError):
        return exc.exit_code
    if is_interrupt(exc):
        return 130
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else 1
