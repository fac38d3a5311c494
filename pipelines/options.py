"""Parsing shared by the CLI commands: one message for one mistake, wherever it is made."""

from __future__ import annotations

import datetime as dt

from pipelines.errors import InputError


def parse_date(value: str | None, option: str = "--date") -> dt.date | None:
    """A YYYY-MM-DD option value, or an `InputError` (exit 2) that names the option."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None
