"""Shared facts for the scoring tests: the run's time frame and small row factories.

RUN_DATE is 2026-03-20 in Asia/Shanghai (UTC+8), window 30 days, so
    start(D)  = 2026-02-19 00:00 local = 2026-02-18 16:00 UTC
    cutoff(D) = 2026-03-21 00:00 local = 2026-03-20 16:00 UTC
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from scoring.rules import Rules, parse_rules
from tests.builders import default_rules_dict, ts

START = ts(2026, 2, 18, 16)
CUTOFF = ts(2026, 3, 20, 16)
HOUR = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def local(*args: int) -> dt.datetime:
    """A wall-clock time in Asia/Shanghai (UTC+8, no DST), as a UTC instant."""
    return dt.datetime(*args, tzinfo=SHANGHAI).astimezone(dt.UTC)


def many(n: int, first_id: int, id_column: str = "order_id", **fields: Any) -> list[dict]:
    """`n` rows with consecutive ids from `first_id` and the same other fields."""
    return [{id_column: first_id + i, **fields} for i in range(n)]


def rules_with(*changes: Callable[[dict], None]) -> Rules:
    """The default rules after applying each change to a deep copy of the parsed TOML dict."""
    data = copy.deepcopy(default_rules_dict())
    for change in changes:
        change(data)
    return parse_rules(data, "test")


def no_shrinkage(*indicators: str) -> Callable[[dict], None]:
    """A change setting k = 0 for the indicators, so smoothed_value == raw_value."""

    def change(data: dict) -> None:
        for indicator in indicators:
            data["indicators"][indicator]["k"] = 0

    return change
