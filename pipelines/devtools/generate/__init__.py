"""Synthetic raw logs for expscore: the inputs of SCORING.md sections 2 and 13.1, day by day.

The generator simulates a marketplace, not a table: shops with a latent quality (that drifts for
some of them) sell items of a few leaf categories; every paid order runs through pickup, transit,
delivery, reviews, refunds and customer-service sessions, and each of these leaves records in the
logs on the business date they are emitted; shops appeal a few orders, refunds and sessions, and
the platform's decisions form the optional fifth log, `appeals`. On top of the simulated truth come
the faults a real feed has: late arrivals, exact duplicates, naive timestamps and other integer
widths in some files, files without the optional `ship_to_region` column, a partition split over
two files, and a small share of deliberately bad rows the loader must quarantine.

Everything is vectorised (Polars expressions, PyArrow compute); the only Python loops are over days,
chunks of orders, logs and a handful of fixed "slots" (version kinds, tracking event kinds).
Randomness is counter-based: each draw is a hash of (seed, stream name, entity id), so a value never
depends on row order, chunk boundaries or on what else was drawn, and the same seed always yields
the same tables.

Timestamps are handled inside as Int64 microseconds since the epoch (UTC) and typed only on writing.

The package: `randomness` (the keyed draws), `calendar` (time and local days), `world` (shops,
items, each shop's condition on a day), `orders` (a day's orders, reviews, the orders log),
`logistics` (fulfilment, the tracking events), `refunds`, `sessions` (customer service),
`shop_appeals` (the appeals log), `faults` (late arrivals, duplicates, bad rows) and `files`
(writing a partition); this module runs them day by day and writes the logs.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.devtools.generate.calendar import Calendar
from pipelines.devtools.generate.faults import (
    BAD_KINDS,
    BAD_ROW_SHARE,
    MAX_BAD_ROW_SHARE,
    emit,
    spoil,
)
from pipelines.devtools.generate.files import FileStyle, arrow_schema, file_style, write_partition
from pipelines.devtools.generate.logistics import fulfilment, tracking_events
from pipelines.devtools.generate.orders import (
    ORDER_ID_STRIDE,
    buyer_feedback,
    order_versions,
    paid_orders,
)
from pipelines.devtools.generate.randomness import Rng
from pipelines.devtools.generate.refunds import refund_lifecycle, refund_requests, refund_versions
from pipelines.devtools.generate.sessions import cs_sessions
from pipelines.devtools.generate.shop_appeals import appeals
from pipelines.devtools.generate.world import World, build_world, shop_conditions
from scoring.contract import LOGS

__all__ = [
    "BAD_KINDS",
    "CHUNK_ORDERS",
    "FileStyle",
    "GenerationReport",
    "Rng",
    "arrow_schema",
    "file_style",
    "generate",
    "generate_raw",
]

CHUNK_ORDERS = 200_000  # orders simulated at once (bounds memory; results do not depend on it)


@dataclass
class GenerationReport:
    """What was written: rows per log, and the deliberately bad rows per log and reason code."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOGS, 0))
    bad_rows: dict[str, dict[str, int]] = field(
        default_factory=lambda: {log: dict.fromkeys(kinds, 0) for log, kinds in BAD_KINDS.items()}
    )


# The in-memory shape of a log: schema columns (timestamps as Int64 microseconds, every integer
# Int64) plus the row key `_rk` that keys the feed-fault draws.
_INTERNAL_TYPES = {"int": pl.Int64, "timestamp": pl.Int64, "bool": pl.Boolean, "string": pl.String}


def _internal(rows: pl.DataFrame, log: str) -> pl.DataFrame:
    """The log's columns in the generator's internal types; an optional column the rows do
    not carry is written as null, as a file without it reads (13.1)."""
    columns = LOGS[log].columns
    return rows.select(
        *[
            (pl.col(c.name) if c.name in rows.columns else pl.lit(None))
            .cast(_INTERNAL_TYPES[c.kind])
            .alias(c.name)
            for c in columns
        ],
        "_rk",
    )


def _internal_empty(log: str) -> pl.DataFrame:
    columns = {c.name: _INTERNAL_TYPES[c.kind] for c in LOGS[log].columns}
    return pl.DataFrame(schema={**columns, "_rk": pl.Int64})


class Outbox:
    """Records waiting for the business date they are emitted on. They wait in Arrow IPC files in a
    scratch folder, so memory holds about one chunk of orders whatever the run length."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._files = 0

    def put(self, log: str, rows: pl.DataFrame) -> None:
        """File rows that carry their emission day in `_emit`."""
        for (day,), part in rows.partition_by("_emit", as_dict=True, include_key=False).items():
            folder = self._folder / log / str(day)
            folder.mkdir(parents=True, exist_ok=True)
            self._files += 1
            part.write_ipc(folder / f"{self._files:09d}.arrow", compression="lz4")

    def take(self, log: str, day: int) -> pl.DataFrame:
        """All rows of `log` emitted on `day`, in the order they were filed (then forgotten)."""
        folder = self._folder / log / str(day)
        files = sorted(folder.glob("*.arrow"))
        if not files:
            return _internal_empty(log)
        frame = pl.concat([pl.read_ipc(f) for f in files], rechunk=True)
        shutil.rmtree(folder)
        return frame


def simulate_orders(
    world: World, conditions: pl.DataFrame, cal: Calendar, rng: Rng, day: int, orders: range
) -> dict[str, pl.DataFrame]:
    """Everything some orders paid on `day` will ever write, per log, each row with the version
    time that places it in a partition (rows due after the last day are dropped later)."""
    paid = paid_orders(world, conditions, cal, rng, day, orders)
    paid = buyer_feedback(fulfilment(paid, cal, rng), rng)
    refunds = refund_lifecycle(refund_requests(paid, rng), rng)
    sessions = cs_sessions(paid, cal, rng, day)
    logs = {
        "orders": order_versions(paid),
        "refunds": refund_versions(refunds),
        "logistics": tracking_events(paid, rng),
        "cs_sessions": sessions,
        "appeals": appeals(paid, refunds, sessions, rng),
    }
    return {log: _internal(rows, log) for log, rows in logs.items()}


def generate(
    out: Path,
    start: date,
    days: int,
    shops: int,
    orders_per_day: int,
    seed: int,
    tz: str = "Asia/Shanghai",
    bad_rows: float = BAD_ROW_SHARE,
) -> GenerationReport:
    """Generate and write the raw logs day by day; see `generate_raw`. Returns the full report.

    A day's orders are simulated in chunks (every draw is keyed by an id, so the chunking does not
    change a single value); what a chunk emits on later days waits in the outbox, a scratch folder
    inside `out` that is removed at the end."""
    if days < 1 or shops < 1 or orders_per_day < 1:
        raise ValueError("days, shops and orders_per_day must be positive")
    if not 0 <= bad_rows <= MAX_BAD_ROW_SHARE:
        raise ValueError(f"the share of bad rows must be between 0 and {MAX_BAD_ROW_SHARE}")
    if orders_per_day >= ORDER_ID_STRIDE:
        raise ValueError(f"orders_per_day must be below {ORDER_ID_STRIDE}")
    out = Path(out)
    cal = Calendar.build(start, days, tz)
    rng = Rng(seed)
    world = build_world(shops, orders_per_day, rng)
    report = GenerationReport()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".generate-", dir=out) as scratch:
        outbox = Outbox(Path(scratch))
        for day in range(days):
            conditions = shop_conditions(world, day)
            for first in range(0, orders_per_day, CHUNK_ORDERS):
                chunk = range(first, min(first + CHUNK_ORDERS, orders_per_day))
                for log, rows in simulate_orders(world, conditions, cal, rng, day, chunk).items():
                    outbox.put(log, emit(rows, log, cal, rng))
            for log in LOGS:
                frame = spoil(outbox.take(log, day), log, cal, rng, day, bad_rows)
                write_partition(out, log, cal.date(day), frame, file_style(rng, log, day), rng)
                report.rows[log] += frame.height
                for reason, count in frame["_bad"].drop_nulls().value_counts().rows():
                    report.bad_rows[log][reason] += count
    return report


def generate_raw(
    out: Path,
    start: date,
    days: int,
    shops: int,
    orders_per_day: int,
    seed: int,
    tz: str = "Asia/Shanghai",
    bad_rows: float = BAD_ROW_SHARE,
) -> dict[str, int]:
    """Write synthetic raw logs `<out>/<log>/dt=YYYY-MM-DD/part-0.parquet` (sometimes also
    `part-1.parquet`) for `dt = start .. start + days - 1` and return the rows written per log:
    the four logs of section 2 every day, and `appeals` (13.1) on the days it has rows.

    `shops` shops share `orders_per_day` paid orders a day (heavy-tailed; a few shops are tiny).
    Records are placed by the business date (in `tz`) on which they are emitted; records due after
    the last day are not written. `bad_rows` is the share of each partition's rows broken on
    purpose (at least one row, unless 0: clean data). The same arguments give the same tables.
    """
    return generate(out, start, days, shops, orders_per_day, seed, tz, bad_rows).rows
