"""The table contract: the raw inputs (SCORING.md 2, 13.1) and the published tables (10, 12.18).

Every reader and writer takes names, columns, types and keys from here: the loader (validation,
quarantine), the generator (what it writes), the window state, the publisher, the query views,
the analyst commands and the tests. For the raw logs the types are the *canonical* ones: a file
may carry a narrower or wider integer, or a naive or UTC-aware timestamp, and the loader casts it
to these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Kind = Literal["int", "timestamp", "bool", "string"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    duck_type: str  # canonical DuckDB type after loading
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    optional: bool = False  # a file may leave the column out: it then reads as all null (13.1)


@dataclass(frozen=True)
class LogSchema:
    name: str
    key: str
    columns: tuple[Column, ...]
    change_log: bool  # True: keep the latest version per key; False: append-only, dedupe by key
    version_column: str  # the time that must lie before the partition's cutoff
    optional: bool = False  # a raw folder may hold no such log: no rows that day (13.1)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _i64(name: str, nullable: bool = False) -> Column:
    return Column(name, "int", "BIGINT", nullable)


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, "timestamp", "TIMESTAMP", nullable)


def _bool(name: str, nullable: bool = False) -> Column:
    return Column(name, "bool", "BOOLEAN", nullable)


REFUND_TYPES = ("refund_only", "return_refund")
REFUND_REASONS = (
    "quality",
    "not_as_described",
    "damaged",
    "wrong_item",
    "late_delivery",
    "changed_mind",
    "other",
)
SELLER_DECISIONS = ("agreed", "refused", "negotiated")
RULINGS = ("merchant_responsible", "buyer_responsible", "no_fault")
APPEAL_SUBJECTS = ("order", "refund", "session")
APPEAL_OUTCOMES = ("upheld", "rejected")
EVENT_TYPES = ("picked_up", "in_transit", "out_for_delivery", "delivered", "exception", "returned")

ORDERS = LogSchema(
    name="orders",
    key="order_id",
    change_log=True,
    version_column="updated_at",
    columns=(
        _i64("order_id"),
        _i64("shop_id"),
        _i64("item_id"),
        Column("category_id", "int", "INTEGER"),
        _i64("buyer_id"),
        _ts("paid_at"),
        _i64("amount_cents"),
        _ts("promised_ship_at", nullable=True),
        _ts("promised_delivery_at", nullable=True),
        _bool("return_insurance"),
        _ts("cancelled_at", nullable=True),
        Column("review_rating", "int", "TINYINT", nullable=True),
        _bool("is_abnormal"),
        _ts("updated_at"),
        Column("ship_to_region", "string", "VARCHAR", nullable=True, optional=True),
    ),
)

REFUNDS = LogSchema(
    name="refunds",
    key="refund_id",
    change_log=True,
    version_column="updated_at",
    columns=(
        _i64("refund_id"),
        _i64("order_id"),
        _i64("shop_id"),
        _i64("item_id"),
        _ts("requested_at"),
        Column("refund_type", "string", "VARCHAR", enum=REFUND_TYPES),
        Column("reason", "string", "VARCHAR", enum=REFUND_REASONS),
        Column("seller_decision", "string", "VARCHAR", nullable=True, enum=SELLER_DECISIONS),
        _ts("decided_at", nullable=True),
        _bool("platform_help"),
        _ts("escalated_at", nullable=True),
        Column("ruling", "string", "VARCHAR", nullable=True, enum=RULINGS),
        _bool("negotiated_retained"),
        _ts("completed_at", nullable=True),
        _i64("amount_cents"),
        _bool("is_abnormal"),
        _ts("updated_at"),
    ),
)

LOGISTICS = LogSchema(
    name="logistics",
    key="event_id",
    change_log=False,
    version_column="event_at",
    columns=(
        _i64("event_id"),
        _i64("order_id"),
        _i64("shop_id"),
        Column("event_type", "string", "VARCHAR", enum=EVENT_TYPES),
        _ts("event_at"),
        _bool("door_delivery", nullable=True),
    ),
)

CS_SESSIONS = LogSchema(
    name="cs_sessions",
    key="session_id",
    change_log=False,
    version_column="closed_at",
    columns=(
        _i64("session_id"),
        _i64("shop_id"),
        _i64("buyer_id"),
        _i64("order_id", nullable=True),
        _ts("started_at"),
        Column("first_response_seconds", "int", "INTEGER", nullable=True),
        Column("satisfaction", "int", "TINYINT", nullable=True),
        _bool("escalated_to_platform"),
        _ts("closed_at"),
    ),
)

# v1.1 (13.1): the platform's decisions on merchants' appeals; a subject with an upheld appeal
# counts nowhere, as if abnormal (13.2)
APPEALS = LogSchema(
    name="appeals",
    key="appeal_id",
    change_log=False,
    version_column="decided_at",
    optional=True,
    columns=(
        _i64("appeal_id"),
        _i64("shop_id"),
        Column("subject", "string", "VARCHAR", enum=APPEAL_SUBJECTS),
        _i64("subject_id"),
        Column("outcome", "string", "VARCHAR", enum=APPEAL_OUTCOMES),
        _ts("decided_at"),
    ),
)

LOGS: dict[str, LogSchema] = {s.name: s for s in (ORDERS, REFUNDS, LOGISTICS, CS_SESSIONS, APPEALS)}


# ---------------------------------------------------------------------------------------
# Published tables (SCORING.md 10)

# The published columns and their types (SCORING.md 10, reading 12.18), in order.
TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "shop_scores": {
        "shop_id": pl.Int64,
        "main_category_id": pl.Int64,
        "valid_orders": pl.Int64,
        "appeals_upheld": pl.Int64,
        "status": pl.String,
        "score": pl.Float64,
        "score_display": pl.Float64,
        "band": pl.String,
        "product_score": pl.Float64,
        "logistics_score": pl.Float64,
        "service_score": pl.Float64,
        "bonus": pl.Float64,
        "peer_percentile": pl.Float64,
    },
    "shop_indicators": {
        "shop_id": pl.Int64,
        "indicator": pl.String,
        "dimension": pl.String,
        "numerator": pl.Float64,
        "denominator": pl.Int64,
        "excluded": pl.Int64,
        "raw_value": pl.Float64,
        "prior": pl.Float64,
        "smoothed_value": pl.Float64,
        "indicator_score": pl.Float64,
        "effective_weight": pl.Float64,
        "points_lost": pl.Float64,
        "assessed": pl.Boolean,
    },
    "item_scores": {
        "item_id": pl.Int64,
        "shop_id": pl.Int64,
        "category_id": pl.Int64,
        "paid_orders": pl.Int64,
        "problem_orders": pl.Int64,
        "smoothed_rate": pl.Float64,
        "pxi": pl.Float64,
        "status": pl.String,
        "category_percentile": pl.Float64,
    },
    "shop_labels": {
        "shop_id": pl.Int64,
        "label": pl.String,
        "value": pl.Float64,
        "display_text": pl.String,
        "since": pl.Date,
    },
    "shop_traffic_weights": {
        "shop_id": pl.Int64,
        "target_weight": pl.Float64,
        "weight": pl.Float64,
        "refund_only_tier": pl.String,
        "campaign_eligible": pl.Boolean,
    },
    "item_traffic_weights": {
        "item_id": pl.Int64,
        "shop_id": pl.Int64,
        "weight": pl.Float64,
        "campaign_eligible": pl.Boolean,
    },
}
TABLE_KEYS: dict[str, list[str]] = {
    "shop_scores": ["shop_id"],
    "shop_indicators": ["shop_id", "indicator"],
    "item_scores": ["item_id"],
    "shop_labels": ["shop_id", "label"],
    "shop_traffic_weights": ["shop_id"],
    "item_traffic_weights": ["item_id"],
}

PREVIOUS_LABELS_SCHEMA = {"shop_id": pl.Int64, "label": pl.String, "since": pl.Date}
PREVIOUS_WEIGHTS_SCHEMA = {"shop_id": pl.Int64, "weight": pl.Float64}

# A quarantined row: its log, first reason code, where it came from, its key and the whole row.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "log": pl.String,
    "reason": pl.String,
    "source_dt": pl.Date,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "record_key": pl.Int64,
    "row": pl.String,
}

# A published table's partitions: `<table>/dt=YYYY-MM-DD/`; readers take `dt` from the folder.
PARTITION_KEY = "dt"
QUARANTINE_TABLE = "quarantine"
# Every table `run` publishes, in the README's order.
PUBLISHED_TABLES: tuple[str, ...] = (*TABLE_SCHEMAS, QUARANTINE_TABLE)

# The published columns of each table, with the partition key and the rules version every row
# carries: an empty frame of these stands for a date without a partition.
_EXTRA = {PARTITION_KEY: pl.Date, "rules_version": pl.String}
PUBLISHED_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    **{name: {**schema, **_EXTRA} for name, schema in TABLE_SCHEMAS.items()},
    QUARANTINE_TABLE: {**QUARANTINE_SCHEMA, **_EXTRA},
}
