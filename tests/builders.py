"""Hand-built inputs for tests: raw Parquet partitions and current-state LazyFrames.

Rows are given as dicts with only the columns a test cares about; every other column gets a
harmless default, so each test reads as the few facts it is about.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import InputError
from pipelines.nightly.run import require_input
from pipelines.state import StateOptions, window_facts
from scoring.contract import LOGS, PREVIOUS_LABELS_SCHEMA, PREVIOUS_WEIGHTS_SCHEMA
from scoring.daily import rules_window, score_facts
from scoring.rules import Rules, parse_rules

DEFAULT_RULES_PATH = (
    Path(__file__).resolve().parents[1] / "pipelines" / "config" / "rules.default.toml"
)
UTC = dt.UTC


def default_rules_dict() -> dict[str, Any]:
    with open(DEFAULT_RULES_PATH, "rb") as fh:
        return tomllib.load(fh)


def default_rules(**overrides: Any) -> Rules:
    data = default_rules_dict()
    data.update(overrides)
    return parse_rules(data, "test")


def ts(*args: int) -> dt.datetime:
    """A UTC instant."""
    return dt.datetime(*args, tzinfo=UTC)


PAID = ts(2026, 3, 1, 2)  # 10:00 local on 2026-03-01
_DEFAULTS: dict[str, dict[str, Any]] = {
    "orders": {
        "shop_id": 1,
        "item_id": 100,
        "category_id": 5,
        "buyer_id": 9,
        "paid_at": PAID,
        "amount_cents": 1000,
        "promised_ship_at": None,
        "promised_delivery_at": None,
        "return_insurance": False,
        "cancelled_at": None,
        "review_rating": None,
        "is_abnormal": False,
        "updated_at": None,
        "ship_to_region": None,
    },
    "refunds": {
        "order_id": 1,
        "shop_id": 1,
        "item_id": 100,
        "requested_at": ts(2026, 3, 5),
        "refund_type": "refund_only",
        "reason": "changed_mind",
        "seller_decision": None,
        "decided_at": None,
        "platform_help": False,
        "escalated_at": None,
        "ruling": None,
        "negotiated_retained": False,
        "completed_at": None,
        "amount_cents": 1000,
        "is_abnormal": False,
        "updated_at": None,
    },
    "logistics": {
        "order_id": 1,
        "shop_id": 1,
        "event_type": "in_transit",
        "event_at": ts(2026, 3, 2),
        "door_delivery": None,
    },
    "cs_sessions": {
        "shop_id": 1,
        "buyer_id": 9,
        "order_id": None,
        "started_at": ts(2026, 3, 3, 2),
        "first_response_seconds": 60,
        "satisfaction": None,
        "escalated_to_platform": False,
        "closed_at": None,
    },
    "appeals": {
        "shop_id": 1,
        "subject": "order",
        "subject_id": 1,
        "outcome": "upheld",
        "decided_at": ts(2026, 3, 10),
    },
}
_POLARS_TYPES = {
    "BIGINT": pl.Int64,
    "INTEGER": pl.Int32,
    "TINYINT": pl.Int8,
    "BOOLEAN": pl.Boolean,
    "VARCHAR": pl.String,
    "TIMESTAMP": pl.Datetime("us", "UTC"),
}


def complete_rows(log: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill defaults; keys count up from 1; version times default to the row's own times."""
    schema = LOGS[log]
    done = []
    for i, row in enumerate(rows, start=1):
        full = {schema.key: i, **_DEFAULTS[log], **row}
        if log == "orders" and full["updated_at"] is None:
            full["updated_at"] = full["paid_at"]
        if log == "refunds" and full["updated_at"] is None:
            full["updated_at"] = max(
                t for t in (full["requested_at"], full["decided_at"], full["escalated_at"]) if t
            )
        if log == "cs_sessions" and full["closed_at"] is None:
            full["closed_at"] = full["started_at"] + dt.timedelta(minutes=10)
        done.append(full)
    return done


def frame(log: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows of one log with canonical types."""
    schema = LOGS[log]
    types = {c.name: _POLARS_TYPES[c.duck_type] for c in schema.columns}
    return pl.DataFrame(complete_rows(log, rows), schema=types)


def write_partition(
    raw: Path, log: str, day: dt.date, rows: list[dict], name: str = "part-0"
) -> Path:
    """Write rows (already complete or not) to `<raw>/<log>/dt=<day>/<name>.parquet`."""
    folder = raw / log / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    frame(log, rows).write_parquet(path)
    return path


def tiny_raw(raw: Path) -> Path:
    """Three orders on 2026-03-01 and a session on 03-02: the smallest raw folder a run scores."""
    write_partition(raw, "orders", dt.date(2026, 3, 1), [{"order_id": i} for i in range(1, 4)])
    write_partition(raw, "cs_sessions", dt.date(2026, 3, 2), [{"started_at": ts(2026, 3, 2, 3)}])
    return raw


def picked_up_on_time(
    orders: list[dict], after: dt.timedelta = dt.timedelta(hours=1)
) -> list[dict]:
    """A `picked_up` event `after` each order's payment: orders that no late shipment touches."""
    return [
        {
            "order_id": o["order_id"],
            "shop_id": o.get("shop_id", 1),
            "event_type": "picked_up",
            "event_at": o.get("paid_at", PAID) + after,
        }
        for o in orders
    ]


@dataclass(frozen=True)
class Inputs:
    """Hand-built rows of the five logs, and what the run published for D-1 (None: nothing)."""

    orders: list[dict] = field(default_factory=list)
    refunds: list[dict] = field(default_factory=list)
    logistics: list[dict] = field(default_factory=list)
    cs_sessions: list[dict] = field(default_factory=list)
    appeals: list[dict] = field(default_factory=list)
    previous_labels: pl.DataFrame | None = None
    previous_weights: pl.DataFrame | None = None

    def logs(self) -> dict[str, list[dict]]:
        return {log: getattr(self, log) for log in LOGS}


def day_inputs(
    orders: list[dict] = (),
    refunds: list[dict] = (),
    logistics: list[dict] = (),
    cs_sessions: list[dict] = (),
    previous_labels: pl.DataFrame | None = None,
    previous_weights: pl.DataFrame | None = None,
    appeals: list[dict] = (),
) -> Inputs:
    """The rows a test is about, for `score`; every other column gets its default."""
    return Inputs(
        list(orders),
        list(refunds),
        list(logistics),
        list(cs_sessions),
        list(appeals),
        previous_labels,
        previous_weights,
    )


def write_raw(
    raw: Path,
    logs: dict[str, list[dict]],
    tz: str,
    files_per_partition: int = 1,
    order_key: int = 0,
) -> Path:
    """Each row into the raw partition of its version time's local business day (in `tz`),
    as upstream would emit it: a row the run's window cannot see lands after the run date.

    `files_per_partition` splits a partition into several files; `order_key` permutes rows.
    """
    zone = zoneinfo.ZoneInfo(tz)
    for log, rows in logs.items():
        version = LOGS[log].version_column
        by_day: dict[dt.date, list[dict]] = {}
        for row in complete_rows(log, rows):
            by_day.setdefault(row[version].astimezone(zone).date(), []).append(row)
        for day, day_rows in by_day.items():
            if order_key:
                day_rows = sorted(
                    day_rows, key=lambda r: hash((order_key, repr(sorted(r.items()))))
                )
            for part in range(files_per_partition):
                chunk = day_rows[part::files_per_partition]
                if chunk:
                    write_partition(raw, log, day, chunk, name=f"part-{part}")
    return raw


RUN_DATE = dt.date(2026, 3, 20)  # window: 2026-02-19 .. 2026-03-20 local


def score(
    inputs: Inputs, rules: Rules | None = None, run_date: dt.date = RUN_DATE
) -> dict[str, pl.DataFrame]:
    """All six tables for hand-built rows, computed by the code the nightly run runs.

    The rows are written as raw partitions; the run's state stage (`window_facts`: load,
    quarantine, the window state's shard tasks) makes the facts and its score stage
    (`score_facts`) the tables, with `inputs`' D-1 labels and weights as the published history.
    Only reading that history from, and publishing to, an output folder are left out (the
    pipeline tests cover them). A row the loader rejects fails the test: hand-built rows are
    meant to be valid input.
    """
    rules = rules or default_rules()
    window = rules_window(rules, run_date)
    with tempfile.TemporaryDirectory(prefix="expscore-unit-") as tmp:
        raw = write_raw(Path(tmp) / "raw", inputs.logs(), rules.timezone)
        require_input(raw, window)  # the run refuses a window without input, as here
        night = window_facts(raw, window, str(Path(tmp) / "state"), StateOptions())
        rejected = {log: r for log, r in night.load.rejected.items() if r}
        assert not rejected, f"hand-built rows were quarantined: {rejected}"
        labels = _history(inputs.previous_labels, PREVIOUS_LABELS_SCHEMA)
        weights = _history(inputs.previous_weights, PREVIOUS_WEIGHTS_SCHEMA)
        tables = score_facts(night.facts, rules, labels, weights)
        return dict(zip(tables, pl.collect_all(list(tables.values())), strict=True))


def _history(frame: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """D-1's published table as the run reads it (`pipelines.nightly.run.previous_outputs`)."""
    if frame is None:
        return pl.LazyFrame(schema=schema)
    return frame.lazy().select([pl.col(c).cast(t) for c, t in schema.items()])


def indicator_row(tables: dict[str, pl.DataFrame], shop_id: int, indicator: str) -> dict[str, Any]:
    rows = tables["shop_indicators"].filter(
        (pl.col("shop_id") == shop_id) & (pl.col("indicator") == indicator)
    )
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def window_is_empty(raw: Path, rules: Rules, day: dt.date) -> bool:
    """No partition of any log in the run's window: the run refuses it (exit 2)."""
    try:
        require_input(raw, rules_window(rules, day))
    except InputError:
        return True
    return False


@functools.cache
def small_raw() -> Path:
    """A small generated marketplace over the sample's 40 days (2026-01-20..02-28: 40 shops,
    150 orders a day, every log, late rows and bad rows): for the tests of the state's and the
    executors' mechanics, which need realistic input but not the sample's volume (a run costs
    about a sixth of the sample's). Generated once per test process; treat it as read-only."""
    from pipelines.devtools.generate import generate_raw

    folder = Path(tempfile.mkdtemp(prefix="expscore-small-raw-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    generate_raw(folder, dt.date(2026, 1, 20), 40, shops=40, orders_per_day=150, seed=11)
    return folder
