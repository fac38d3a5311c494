"""The run's time frame (SCORING.md 1): business days in the rules' zone, instants in UTC."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from scoring.rules import ExemptionRule


def local_midnight_utc(day: dt.date, tz: str) -> dt.datetime:
    """00:00 of `day` in zone `tz`, as an aware UTC instant."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(tz))
    return local.astimezone(dt.UTC)


@dataclass(frozen=True)
class Window:
    """`start <= t < cutoff` is "in window" for run date `run_date`.

    With the rules' `exemptions` (13.3), which take the rows they match out of the indicators
    they name: the window says which rows count, and the exemptions are part of that answer,
    so everything that counts rows (the facts, the window state's sums) gets them from here.
    """

    run_date: dt.date
    days: int
    tz: str
    exemptions: tuple[ExemptionRule, ...] = ()

    @property
    def first_date(self) -> dt.date:
        return self.run_date - dt.timedelta(days=self.days - 1)

    @property
    def start(self) -> dt.datetime:
        return local_midnight_utc(self.first_date, self.tz)

    @property
    def cutoff(self) -> dt.datetime:
        return partition_cutoff(self.run_date, self.tz)

    def partition_dates(self) -> list[dt.date]:
        """The raw partitions a run reads: D-(W-1) <= dt <= D."""
        return [self.first_date + dt.timedelta(days=i) for i in range(self.days)]


def partition_cutoff(day: dt.date, tz: str) -> dt.datetime:
    """cutoff(dt): no record emitted on business day `dt` may be at or after this instant."""
    return local_midnight_utc(day + dt.timedelta(days=1), tz)


def local_date(column: str, tz: str) -> pl.Expr:
    """The local date in `tz` of the UTC instant in `column`."""
    return pl.col(column).dt.convert_time_zone(tz).dt.date()
