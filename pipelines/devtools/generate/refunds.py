"""Refunds: which orders ask for one, why and when, the seller's decision, the platform's
ruling and completion, and the refunds log, one version per change."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipelines.devtools.generate.calendar import HOUR, _hours
from pipelines.devtools.generate.orders import _at_or_before, _change_log
from pipelines.devtools.generate.randomness import Draws, Rng, _between, _choose, _lerp, _pick
from scoring.contract import REFUND_REASONS, RULINGS

REFUND_SLOTS = 4  # refund_id = order_id * 4 + refund number


def refund_requests(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Which orders ask for a refund, why and when. After delivery the reason mix follows the shop's
    product quality and the trip (damage, broken promise); before delivery buyers give up waiting or
    change their minds. Some orders ask twice."""
    d = Draws(rng, "order_id", "refund")
    delivered = pl.col("delivered_at").is_not_null()
    late = (pl.col("delivered_at") > pl.col("promised_delivery_at")).fill_null(False)
    after_delivery = {
        "quality": pl.col("quality_refund_p") * 0.6,
        "not_as_described": pl.col("quality_refund_p") * 0.4,
        "damaged": pl.col("damage_p"),
        "wrong_item": _lerp(0.015, 0.002, pl.col("q")),
        "late_delivery": pl.when(late).then(0.15).otherwise(0.002),
        "changed_mind": pl.lit(0.07),
        "other": pl.lit(0.01),
    }
    before_delivery = {"late_delivery": 0.03, "changed_mind": 0.03, "other": 0.01}
    asked_again = {"quality": 0.2, "not_as_described": 0.1, "damaged": 0.05, "wrong_item": 0.15}
    asked_again |= {"changed_mind": 0.3, "other": 0.2}
    none = len(REFUND_REASONS)
    reason = (
        pl.when(delivered)
        .then(_pick(d.u("reason"), _in_enum_order(after_delivery)))
        .when(pl.col("cancelled_at").is_null())
        .then(_pick(d.u("reason"), _in_enum_order(before_delivery)))
        .otherwise(none)
    )
    requested_at = (
        pl.when(delivered)
        .then(pl.col("delivered_at") + _hours(_between(d.u("after_h") ** 2, 0.5, 160.0)))
        .otherwise(pl.col("paid_at") + _hours(_between(d.u("before_h"), 2.0, 72.0)))
    )
    again = d.u("again") < 0.05
    again_reason = _pick(d.u("again_reason"), _in_enum_order(asked_again))
    again_at = pl.col("requested_at") + _hours(_between(d.u("again_h"), 12.0, 120.0))
    first = d.with_columns(
        o,
        reason_idx=reason,
        requested_at=requested_at,
        refund_id=pl.col("order_id") * REFUND_SLOTS + 1,
    ).filter(pl.col("reason_idx") < none)
    second = first.filter(again).with_columns(
        reason_idx=again_reason.clip(0, none - 1),
        requested_at=again_at,
        refund_id=pl.col("order_id") * REFUND_SLOTS + 2,
    )
    return d.detach(pl.concat([first, second])).with_columns(
        reason=_choose(pl.col("reason_idx"), REFUND_REASONS), delivered=delivered
    )


def _in_enum_order(
    probs: dict[str, pl.Expr | float], enum: Sequence[str] = REFUND_REASONS
) -> list[pl.Expr | float]:
    """Probabilities by value name, in the order of the schema's enum (missing values: 0)."""
    unknown = set(probs) - set(enum)
    if unknown:
        raise ValueError(f"not in the schema's enum: {sorted(unknown)}")
    return [probs.get(value, 0.0) for value in enum]


def refund_lifecycle(r: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """The seller's decision and its delay, negotiation, the buyer asking the platform for help, the
    platform's ruling, completion and the abnormal-refund flag, as instants (null = never)."""
    d = Draws(rng, "refund_id", "refund")
    reason = pl.col("reason")
    goods_problem = reason.is_in(["quality", "not_as_described", "damaged", "wrong_item"])
    return_refund = pl.col("delivered") & (
        (goods_problem & (d.u("type") < 0.7)) | ((reason == "changed_mind") & (d.u("type") < 0.85))
    )
    refused = d.u("decision") < pl.col("refusal_p")
    negotiated = ~refused & (d.u("decision") < pl.col("refusal_p") + 0.08)
    damaged_decision = (
        pl.when(d.u("decision") < pl.col("damaged_agree_p"))
        .then(pl.lit("agreed"))
        .otherwise(pl.lit("refused"))
    )
    decision = (
        pl.when(d.u("silent") < 0.02)
        .then(pl.lit(None, pl.String))
        .when(reason == "damaged")
        .then(damaged_decision)
        .when(refused)
        .then(pl.lit("refused"))
        .when(negotiated)
        .then(pl.lit("negotiated"))
        .otherwise(pl.lit("agreed"))
    )
    handling = pl.col("handling_median_h") * (0.9 * d.z("handling")).exp()
    partial = (pl.col("amount_cents") * _between(d.u("share"), 0.2, 1.0)).floor().cast(pl.Int64)
    r = d.with_columns(
        r,
        refund_type=pl.when(return_refund)
        .then(pl.lit("return_refund"))
        .otherwise(pl.lit("refund_only")),
        seller_decision=decision,
        refund_amount=pl.when(d.u("partial") < 0.8).then("amount_cents").otherwise(partial),
    )
    decision = pl.col("seller_decision")
    r = d.with_columns(
        r,
        decided_at=pl.when(decision.is_not_null()).then(pl.col("requested_at") + _hours(handling)),
        retained=(decision == "negotiated").fill_null(False) & (d.u("kept") < 0.5),
    )
    help_p = (
        pl.when(decision.is_null())
        .then(0.6)
        .when(decision == "refused")
        .then(0.35)
        .when((decision == "negotiated") & ~pl.col("retained"))
        .then(0.1)
        .otherwise(0.003)
    )
    escalated_at = pl.coalesce("decided_at", pl.col("requested_at") + 48 * HOUR) + _hours(
        _between(d.u("escalate_h"), 1.0, 48.0)
    )
    r = d.with_columns(r, escalated_at=pl.when(d.u("escalate") < help_p).then(escalated_at))
    escalated = pl.col("escalated_at").is_not_null()
    ruling_p = {
        "merchant_responsible": _lerp(0.6, 0.2, pl.col("q_service")),
        "buyer_responsible": 0.25,
    }
    ruling = _pick(d.u("ruling"), _in_enum_order(ruling_p, RULINGS)[:-1])
    ruled_at = pl.col("escalated_at") + _hours(_between(d.u("ruling_h"), 6.0, 96.0))
    settle_h = (
        pl.when(escalated)
        .then(_between(d.u("done_h"), 1.0, 24.0))
        .when(decision == "agreed")
        .then(_between(d.u("done_h"), 2.0, 96.0))
        .otherwise(_between(d.u("done_h"), 0.1, 24.0))
    )
    abnormal_p = 0.01 + pl.when(
        (pl.col("refund_type") == "refund_only") & (reason == "changed_mind")
    ).then(0.03).otherwise(0.0)
    flagged_at = (
        pl.when(d.u("flag_now") < 0.5)
        .then("requested_at")
        .otherwise(pl.col("requested_at") + _hours(_between(d.u("flag_h"), 1.0, 48.0)))
    )
    return d.detach(
        d.with_columns(
            r,
            ruling=pl.when(escalated).then(_choose(ruling, RULINGS)),
            ruled_at=ruled_at,
            completed_at=pl.when(escalated).then(ruled_at).otherwise("decided_at")
            + _hours(settle_h),
            refund_flagged_at=pl.when(d.u("abnormal") < abnormal_p).then(flagged_at),
        )
    )


def refund_versions(r: pl.DataFrame) -> pl.DataFrame:
    """The refunds change log: requested, decided, escalated, ruled, completed, flagged later."""
    fixed = ("refund_id", "order_id", "shop_id", "item_id", "requested_at", "refund_type", "reason")

    def state_at(ts: pl.Expr) -> dict[str, str | pl.Expr]:
        decided = _at_or_before("decided_at", ts)
        escalated = _at_or_before("escalated_at", ts)
        completed = _at_or_before("completed_at", ts)
        return {
            **{c: c for c in fixed},
            "seller_decision": pl.when(decided).then("seller_decision"),
            "decided_at": pl.when(decided).then("decided_at"),
            "platform_help": escalated,
            "escalated_at": pl.when(escalated).then("escalated_at"),
            "ruling": pl.when(escalated & _at_or_before("ruled_at", ts)).then("ruling"),
            "negotiated_retained": pl.col("retained") & completed,
            "completed_at": pl.when(completed).then("completed_at"),
            "amount_cents": pl.col("refund_amount"),
            "is_abnormal": _at_or_before("refund_flagged_at", ts),
        }

    times = [
        pl.col("requested_at"),
        pl.col("decided_at"),
        pl.col("escalated_at"),
        pl.when(pl.col("escalated_at").is_not_null()).then("ruled_at"),
        pl.col("completed_at"),
        pl.when(pl.col("refund_flagged_at") > pl.col("requested_at")).then("refund_flagged_at"),
    ]
    return _change_log(r, "refund_id", times, state_at)
