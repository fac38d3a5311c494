"""Parsing shared by the CLI commands: one message for one mistake, wherever it is made."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

import typer

from pipelines import logs
from pipelines.errors import InputError


class LogFormatChoice(StrEnum):
    """`--log-format`: how log lines on stderr look (pipelines/logs.py)."""

    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormatChoice | None,
    typer.Option(
        "--log-format",
        help="Log lines on stderr: text (logfmt) or json (one object a line, with run_id). "
        "Default: EXPSCORE_LOG_FORMAT, else a progress bar on a terminal and text otherwise.",
    ),
]


def use_log_format(choice: LogFormatChoice | None) -> None:
    """Apply a command's `--log-format` to the logging setup the CLI started with."""
    logs.use_format(None if choice is None else choice.value)


def parse_date(value: str | None, option: str = "--date") -> dt.date | None:
    """A YYYY-MM-DD option value, or an `InputError` (exit 2) that names the option."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None
