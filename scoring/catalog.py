"""What each indicator, bonus item and label *is*: fixed by the spec, so it lives in code.

How much each one counts (weights, k, knots, thresholds) is policy and lives in the rules file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower"]
DIMENSIONS: tuple[str, ...] = ("product", "logistics", "service")
# The raw logs of SCORING.md 2 (their columns: scoring/contract.py).
RAW_LOGS: tuple[str, ...] = ("orders", "refunds", "logistics", "cs_sessions")


# The kinds of row an indicator may count (the fact tables of scoring/indicators.py).
Source = Literal["orders", "refunds", "sessions"]


@dataclass(frozen=True)
class Indicator:
    id: str
    dimension: str
    better: Direction
    # The one kind of row both numerator and denominator count; None when they count different
    # things (platform_help_rate: help refunds and escalated sessions over |V|). An exemption
    # removes matching rows from an indicator (SCORING.md 13.3), which needs exactly one kind.
    source: Source | None
    hours: bool = False  # numerator is a float sum of hours, not a count


INDICATORS: tuple[Indicator, ...] = (
    Indicator("quality_refund_rate", "product", "lower", "orders"),
    Indicator("negative_review_rate", "product", "lower", "orders"),
    Indicator("pickup_on_time_rate", "logistics", "higher", "orders"),
    Indicator("delivery_promise_rate", "logistics", "higher", "orders"),
    Indicator("track_anomaly_rate", "logistics", "lower", "orders"),
    Indicator("delivery_hours", "logistics", "lower", "orders", hours=True),
    Indicator("door_delivery_rate", "logistics", "higher", "orders"),
    Indicator("cs_response_rate", "service", "higher", "sessions"),
    Indicator("cs_satisfaction_rate", "service", "higher", "sessions"),
    Indicator("refund_refusal_rate", "service", "lower", "refunds"),
    Indicator("platform_help_rate", "service", "lower", None),
    Indicator("refund_handling_hours", "service", "lower", "refunds", hours=True),
)
INDICATOR_BY_ID: dict[str, Indicator] = {i.id: i for i in INDICATORS}
# What an exemption's exclude_from may name (SCORING.md 13.3): the indicators over one kind of row.
EXCLUDABLE_INDICATORS: tuple[str, ...] = tuple(i.id for i in INDICATORS if i.source is not None)

BONUS_ITEMS: tuple[str, ...] = ("return_insurance_share", "next_day_delivery_share")


@dataclass(frozen=True)
class Label:
    id: str
    better: Direction
    display: str  # a Python format string, applied literally (SCORING.md 12.16)


LABELS: tuple[Label, ...] = (
    Label("fast_shipping", "lower", "平均发货 {h:.0f} 小时"),
    Label("damage_free_return", "higher", "破损包退"),
    Label("fast_cs_reply", "lower", "客服平均 {s:.0f} 秒回复"),
    Label("high_cs_satisfaction", "higher", "客服满意度 {p:.0%}"),
    Label("door_delivery", "higher", "送货上门"),
    Label("return_insurance", "higher", "退货运费险"),
    Label("top_experience", "higher", "体验分 {score_display}"),
)
LABEL_BY_ID: dict[str, Label] = {label.id: label for label in LABELS}

BANDS: tuple[str, ...] = ("4.8+", "4.5-4.8", "4.0-4.5", "<4.0", "unscored")
