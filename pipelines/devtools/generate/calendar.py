"""Time inside the generator: Int64 microseconds since the epoch (UTC), and the calendar of the
business time zone that maps instants to local days and back (DST-exact)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from pipelines.devtools.generate.randomness import _expr, _pick

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

HORIZON_DAYS = 120  # local midnights known beyond the last day (promises, late deliveries)


def _hours(h: pl.Expr) -> pl.Expr:
    return (h * HOUR).cast(pl.Int64)


@dataclass(frozen=True)
class Calendar:
    """Local midnights of the business time zone as UTC microseconds (DST-exact).

    `midnights[i]` is 00:00 of `start + i` in tz, so day `i` is `[midnights[i], midnights[i+1])` and
    `midnights[i+1]` is the partition cutoff of day `i`.
    """

    start: date
    days: int
    tz: str
    midnights: pl.Series

    @classmethod
    def build(cls, start: date, days: int, tz: str) -> Calendar:
        zone = ZoneInfo(tz)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        micros = [
            (datetime.combine(start + timedelta(days=i), time(), zone) - epoch)
            // timedelta(microseconds=1)
            for i in range(days + HORIZON_DAYS + 1)
        ]
        return cls(start, days, tz, pl.Series("midnight", micros, dtype=pl.Int64))

    def midnight(self, day: int) -> int:
        return int(self.midnights[day])

    def date(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def day_of(self, ts: str | pl.Expr) -> pl.Expr:
        """Local day index of an instant (null stays null; far future maps past the horizon)."""

        def lookup(s: pl.Series) -> pl.Series:
            idx = self.midnights.search_sorted(s.fill_null(0), "right").cast(pl.Int32) - 1
            return idx.zip_with(s.is_not_null(), pl.Series([None], dtype=pl.Int32))

        return _expr(ts).map_batches(lookup, return_dtype=pl.Int32, is_elementwise=True)

    def midnight_of(self, day: pl.Expr) -> pl.Expr:
        """00:00 local of a day index (clamped to the known horizon)."""
        last = self.midnights.len() - 1
        return day.clip(0, last).map_batches(
            lambda s: self.midnights.gather(s), return_dtype=pl.Int64, is_elementwise=True
        )

    def local_time(self, day: int, u: pl.Expr, hour_weights: Sequence[float]) -> pl.Expr:
        """An instant on local day `day`, the hour drawn from a profile, uniform within the hour."""
        total = sum(hour_weights)
        hour = _pick(u, [w / total for w in hour_weights[:-1]])
        within = (u * total - _cumulative_before(hour, hour_weights)) / _weight_of(
            hour, hour_weights
        )
        fraction = ((hour.cast(pl.Float64) + within.clip(0.0, 0.999999)) / 24.0).clip(
            0.0, 0.9999999
        )
        length = self.midnight(day + 1) - self.midnight(day)
        return self.midnight(day) + (fraction * length).cast(pl.Int64)


def _cumulative_before(hour: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    cumulative = [float(sum(weights[:h])) for h in range(len(weights))]
    return hour.replace_strict(dict(enumerate(cumulative)), return_dtype=pl.Float64)


def _weight_of(hour: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    return hour.replace_strict(
        {h: float(w) for h, w in enumerate(weights)}, return_dtype=pl.Float64
    )
