"""The appeals log (SCORING.md 13.1): shops appeal a few of their orders, refunds and sessions,
and the platform upholds or rejects each appeal some days later."""

from __future__ import annotations

import polars as pl

from pipelines.devtools.generate.calendar import HOUR, _hours
from pipelines.devtools.generate.randomness import Draws, Rng, _between
from pipelines.devtools.generate.refunds import REFUND_SLOTS
from pipelines.devtools.generate.sessions import SESSION_SLOTS

APPEAL_SLOTS = 16  # appeal_id = order_id * 16 + 2 * subject slot + attempt (see `appeals`)

# Shops appeal what hurts their score, mostly: per subject, the share appealed when troubled (a
# 1-2 star review; a refund the buyer took to the platform; a complaint or a 1-2 star session)
# and otherwise. Overall about 0.3% of orders, 2% of refunds and 0.5% of sessions.
APPEAL_P = {"order": (0.03, 0.0025), "refund": (0.08, 0.018), "session": (0.03, 0.0035)}
UPHELD_SHARE = 0.4  # of the subjects appealed once
REAPPEAL_SHARE = 0.08  # of the subjects appealed: twice, a first appeal rejected, a second upheld


def appeals(
    orders: pl.DataFrame, refunds: pl.DataFrame, sessions: pl.DataFrame, rng: Rng
) -> pl.DataFrame:
    """The appeals log (13.1): shops appeal a few of their orders, refunds and sessions, troubled
    ones far more often (APPEAL_P), and the platform decides 1-10 days after the payment, the
    request or the session's start (and after the session closed). A single appeal is upheld in
    40% of cases; for some subjects the shop appeals twice: rejected, then upheld 1-3 days later.

    appeal_id = order_id * APPEAL_SLOTS + 2 * slot + attempt: the slot names the subject among
    those of one order (0 the order, 1-3 its refunds, 4-7 its sessions), the attempt is 0 or 1,
    so ids are unique, and every draw is keyed by the first appeal's id (`_base`)."""
    assert 2 * (REFUND_SLOTS + SESSION_SLOTS) <= APPEAL_SLOTS  # the slots fit
    refund_id, session_id = pl.col("refund_id"), pl.col("session_id")
    subjects = pl.concat(
        [
            _subjects(
                orders,
                "order",
                pl.col("order_id"),
                pl.col("order_id"),
                slot=pl.lit(0, pl.Int64),
                at=pl.col("paid_at"),
                troubled=pl.col("review_at").is_not_null() & (pl.col("rating") <= 2),
            ),
            _subjects(
                refunds,
                "refund",
                refund_id,
                refund_id // REFUND_SLOTS,
                slot=refund_id % REFUND_SLOTS,
                at=pl.col("requested_at"),
                troubled=pl.col("escalated_at").is_not_null(),
            ),
            _subjects(
                sessions,
                "session",
                session_id,
                session_id // SESSION_SLOTS,
                slot=REFUND_SLOTS + session_id % SESSION_SLOTS,
                at=pl.col("started_at"),
                troubled=pl.col("escalated_to_platform") | (pl.col("satisfaction") <= 2),
                closed=pl.col("closed_at"),
            ),
        ]
    )
    d = Draws(rng, "_base", "appeal")
    subject = pl.col("subject")
    troubled_p = subject.replace_strict({k: p for k, (p, _) in APPEAL_P.items()})
    other_p = subject.replace_strict({k: p for k, (_, p) in APPEAL_P.items()})
    appealed = d.u("appealed") < pl.when("_troubled").then(troubled_p).otherwise(other_p)
    chosen = d.with_columns(subjects).filter(appealed)
    twice = d.u("twice") < REAPPEAL_SHARE
    days = (
        pl.when(twice)
        .then(_between(d.u("delay"), 1.0, 7.0))
        .otherwise(_between(d.u("delay"), 1.0, 10.0))
    )
    decided_at = pl.max_horizontal(pl.col("_at") + _hours(24.0 * days), pl.col("_closed") + HOUR)
    outcome = (
        pl.when(twice)
        .then(pl.lit("rejected"))
        .when(d.u("upheld") < UPHELD_SHARE)
        .then(pl.lit("upheld"))
        .otherwise(pl.lit("rejected"))
    )
    chosen = d.with_columns(chosen, _twice=twice, decided_at=decided_at, outcome=outcome)
    again_at = pl.col("decided_at") + _hours(24.0 * _between(d.u("again"), 1.0, 3.0))
    chosen = d.detach(d.with_columns(chosen, _again_at=again_at))
    second = chosen.filter("_twice").with_columns(
        _base=pl.col("_base") + 1, decided_at="_again_at", outcome=pl.lit("upheld")
    )
    return pl.concat([chosen, second]).select(
        appeal_id="_base",
        shop_id="shop_id",
        subject="subject",
        subject_id="subject_id",
        outcome="outcome",
        decided_at="decided_at",
        _rk="_base",
    )


def _subjects(
    frame: pl.DataFrame,
    kind: str,
    subject_id: pl.Expr,
    order_id: pl.Expr,
    slot: pl.Expr,
    at: pl.Expr,
    troubled: pl.Expr,
    closed: pl.Expr | None = None,
) -> pl.DataFrame:
    """Orders, refunds or sessions as appeal subjects: id, shop, key of the first appeal (`_base`),
    the time the decision delay counts from, a time the decision must follow, and trouble."""
    return frame.select(
        "shop_id",
        subject=pl.lit(kind),
        subject_id=subject_id,
        _base=order_id * APPEAL_SLOTS + 2 * slot,
        _at=at,
        _closed=at if closed is None else closed,
        _troubled=troubled.fill_null(False),
    )
