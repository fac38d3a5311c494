"""The twelve shop indicators as numerator / denominator sums over facts (SCORING.md 4).

Each indicator is a `Ratio`: a row-level numerator and a row-level denominator over one fact table
(orders of V, refunds, sessions of C). A shop's value is the sum of each over its rows, which is
why every published number can be traced back to the rows it counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from scoring.catalog import INDICATOR_BY_ID, INDICATORS, Source
from scoring.exemptions import excluded
from scoring.reshape import to_long
from scoring.window import Window

MICROS_PER_HOUR = 3.6e9
CS_RESPONSE_LIMIT_SECONDS = 180


@dataclass(frozen=True)
class Ratio:
    """Row-level parts of an indicator: summed per shop they give numerator and denominator."""

    source: Source
    numerator: pl.Expr  # bool (a count) or Int64 microseconds (an hours indicator)
    denominator: pl.Expr  # bool: the row is in the denominator


def _hours_micros(start: str, end: str, counted: pl.Expr) -> pl.Expr:
    """Exact microseconds start -> end for counted rows (12.7: hours are summed exactly)."""
    return pl.when(counted).then((pl.col(end) - pl.col(start)).dt.total_microseconds())


def _delivered() -> pl.Expr:
    return pl.col("delivered_at").is_not_null()


def _picked_up() -> pl.Expr:
    return pl.col("pickup_at").is_not_null()


def quality_refund_rate(cutoff: dt.datetime) -> Ratio:
    """Delivered orders that got a quality / not-as-described refund [首次品退率]."""
    return Ratio("orders", _delivered() & pl.col("has_quality_refund"), _delivered())


def negative_review_rate(cutoff: dt.datetime) -> Ratio:
    """Rated orders rated 1 or 2 [商品差评率]."""
    rated = pl.col("review_rating").is_not_null()
    return Ratio("orders", rated & (pl.col("review_rating") <= 2), rated)


def pickup_on_time_rate(cutoff: dt.datetime) -> Ratio:
    """Due orders picked up by their deadline [48小时揽收及时率].

    An order is due once picked up, or once its deadline has passed, unless it was cancelled by
    the deadline without ever being picked up (the shop owed no pickup then).
    """
    deadline = pl.col("deadline")
    cancelled_in_time = (pl.col("cancelled_at") <= deadline).fill_null(False) & ~_picked_up()
    due = _picked_up() | ((deadline < pl.lit(cutoff)) & ~cancelled_in_time)
    on_time = (pl.col("pickup_at") <= deadline).fill_null(False)
    return Ratio("orders", due & on_time, due)


def delivery_promise_rate(cutoff: dt.datetime) -> Ratio:
    """Orders with a checkout delivery promise that were delivered by it [承诺时效达成率].

    Due once delivered, or once the promise has passed, unless cancelled before any pickup.
    """
    promise = pl.col("promised_delivery_at")
    cancelled_unshipped = pl.col("cancelled_at").is_not_null() & ~_picked_up()
    due = promise.is_not_null() & (
        _delivered() | ((promise < pl.lit(cutoff)) & ~cancelled_unshipped)
    )
    kept = (pl.col("delivered_at") <= promise).fill_null(False)
    return Ratio("orders", due & kept, due)


def track_anomaly_rate(cutoff: dt.datetime) -> Ratio:
    """Picked-up orders with a tracking exception or a stall of more than 72 h [轨迹异常率]."""
    anomalous = pl.col("has_exception") | pl.col("stalled")
    return Ratio("orders", _picked_up() & anomalous, _picked_up())


def delivery_hours(cutoff: dt.datetime) -> Ratio:
    """Hours from payment to delivery, summed over delivered orders [物流到货时长]."""
    return Ratio("orders", _hours_micros("paid_at", "delivered_at", _delivered()), _delivered())


def door_delivery_rate(cutoff: dt.datetime) -> Ratio:
    """Delivered orders handed over at the door [送货上门]."""
    return Ratio("orders", _delivered() & pl.col("delivered_at_door"), _delivered())


def cs_response_rate(cutoff: dt.datetime) -> Ratio:
    """Service-hour sessions with a human reply within 180 s [3分钟人工响应率]."""
    in_hours = pl.col("in_service_hours")
    fast = (pl.col("first_response_seconds") <= CS_RESPONSE_LIMIT_SECONDS).fill_null(False)
    return Ratio("sessions", in_hours & fast, in_hours)


def cs_satisfaction_rate(cutoff: dt.datetime) -> Ratio:
    """Rated sessions rated 4 or 5 [客服满意度]."""
    rated = pl.col("satisfaction").is_not_null()
    return Ratio("sessions", rated & (pl.col("satisfaction") >= 4), rated)


def _decided_in_r() -> pl.Expr:
    return pl.col("in_r") & pl.col("seller_decision").is_not_null()


def refund_refusal_rate(cutoff: dt.datetime) -> Ratio:
    """Decided refunds of R the seller refused [退款拒绝率]."""
    return Ratio(
        "refunds", _decided_in_r() & (pl.col("seller_decision") == "refused"), _decided_in_r()
    )


def refund_handling_hours(cutoff: dt.datetime) -> Ratio:
    """Hours from request to the seller's first decision, decided refunds of R [退款处理时长]."""
    return Ratio(
        "refunds", _hours_micros("requested_at", "decided_at", _decided_in_r()), _decided_in_r()
    )


# platform_help_rate [平台求助率] mixes sources: help refunds and escalated sessions over |V|.
# Its parts are the sums `help_refunds`, `help_sessions` and `valid_orders` below.
RATIOS = {
    "quality_refund_rate": quality_refund_rate,
    "negative_review_rate": negative_review_rate,
    "pickup_on_time_rate": pickup_on_time_rate,
    "delivery_promise_rate": delivery_promise_rate,
    "track_anomaly_rate": track_anomaly_rate,
    "delivery_hours": delivery_hours,
    "door_delivery_rate": door_delivery_rate,
    "cs_response_rate": cs_response_rate,
    "cs_satisfaction_rate": cs_satisfaction_rate,
    "refund_refusal_rate": refund_refusal_rate,
    "refund_handling_hours": refund_handling_hours,
}


def num_col(indicator: str) -> str:
    return f"{indicator}__num"


def den_col(indicator: str) -> str:
    return f"{indicator}__den"


def excl_col(indicator: str) -> str:
    return f"{indicator}__excl"


def count(mask: pl.Expr) -> pl.Expr:
    """Rows where `mask` holds, as Int64 (never a 32-bit counter)."""
    return mask.fill_null(False).cast(pl.Int64).sum()


def ratio_sums(source: Source, window: Window) -> list[pl.Expr]:
    """Per-shop aggregations of numerator and denominator for the ratios of one fact table.

    A row an exemption takes out of an indicator (13.3) leaves its numerator and denominator
    and is counted in its `excluded` sum instead, when it would be in the denominator (13.4).
    """
    sums = []
    for indicator, make in RATIOS.items():
        ratio = make(window.cutoff)
        if ratio.source != source:
            continue
        out = excluded(indicator, source, window.exemptions, window.tz)
        if INDICATOR_BY_ID[indicator].hours:
            numerator = pl.when(~out).then(ratio.numerator).sum()
        else:
            numerator = count(ratio.numerator & ~out)
        sums += [
            numerator.alias(num_col(indicator)),
            count(ratio.denominator & ~out).alias(den_col(indicator)),
            count(ratio.denominator & out).alias(excl_col(indicator)),
        ]
    return sums


def indicator_counts(activity: pl.LazyFrame) -> pl.LazyFrame:
    """Long form: one row per shop x indicator with numerator (Float64) and denominator (Int64).

    `numerator_units` keeps the exact integer numerator (a count, or microseconds for hours
    indicators) and `units_per_numerator` its scale, so pooled priors are exact integer sums
    whatever the summation order; `numerator` is divided into hours once (12.7).
    """
    items = {}
    for ind in INDICATORS:
        if ind.id == "platform_help_rate":  # never exempted (13.3)
            units = pl.col("help_refunds") + pl.col("help_sessions")
            denominator = pl.col("valid_orders")
            removed = pl.lit(0, pl.Int64)
        else:
            units = pl.col(num_col(ind.id))
            denominator = pl.col(den_col(ind.id))
            removed = pl.col(excl_col(ind.id))
        scale = MICROS_PER_HOUR if ind.hours else 1.0
        items[ind.id] = {
            "dimension": pl.lit(ind.dimension),
            "numerator": units.cast(pl.Float64) / scale,
            "denominator": denominator.cast(pl.Int64),
            "excluded": removed.cast(pl.Int64),
            "numerator_units": units.cast(pl.Int64),
            "units_per_numerator": pl.lit(scale),
        }
    return to_long(activity, ["shop_id", "main_category_id"], items, "indicator")
