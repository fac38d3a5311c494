"""The raw input contract (SCORING.md section 2): columns, types, nullability and enums.

One declaration serves the loader (validation, quarantine), the generator (what it writes) and the
docs. Types are the *canonical* ones: a file may carry a narrower or wider integer, or a naive or
UTC-aware timestamp, and the loader casts it to these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
