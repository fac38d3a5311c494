"""Customer-service sessions: pre-sale chats and after-sale chats about an order, their
response times, satisfaction and complaints to the platform (the cs_sessions log)."""

from __future__ import annotations

import polars as pl

from pipelines.devtools.generate.calendar import HOUR, SECOND, Calendar, _hours
from pipelines.devtools.generate.randomness import Draws, Rng, _between, _pick

SESSION_SLOTS = 4  # session_id = order_id * 4 + session kind
# Local hour-of-day profile (relative weights) of chats: CS chats happen in the day.
SESSION_HOURS = (1, 1, 0.5, 0.5, 0.5, 0.5, 1, 2, 6, 8, 8, 8, 7, 7, 8, 8, 8, 7, 7, 7, 8, 8, 6, 3)

_CS_CONDITIONS = ("cs_median_s", "cs_no_answer_p", "cs_good_p", "cs_escalate_p")


def cs_sessions(o: pl.DataFrame, cal: Calendar, rng: Rng, day: int) -> pl.DataFrame:
    """Pre-sale chats (no order id) during the day and after-sale chats about an order, more of them
    after a troubled trip."""
    d = Draws(rng, "order_id", "cs")
    troubled = pl.col("exception_at").is_not_null() | (
        pl.col("delivered_at") > pl.col("promised_delivery_at")
    ).fill_null(False)
    carried = ("shop_id", "buyer_id", *_CS_CONDITIONS)
    presale = (
        pl.col("order_id") * SESSION_SLOTS,
        pl.lit(None, pl.Int64),
        cal.local_time(day, d.u("presale_at"), SESSION_HOURS),
    )
    aftersale = (
        pl.col("order_id") * SESSION_SLOTS + 1,
        pl.col("order_id"),
        pl.coalesce("delivered_at", "paid_at")
        + _hours(_between(d.u("aftersale_h") ** 2, 0.2, 100.0)),
    )
    kinds = (
        (d.u("presale") < 0.12, presale),
        (d.u("aftersale") < 0.25 + pl.when(troubled).then(0.3).otherwise(0.0), aftersale),
    )
    o = d.with_columns(o)
    sessions = [
        o.filter(chosen).select(*carried, session_id=sid, order_id=order_id, started_at=started)
        for chosen, (sid, order_id, started) in kinds
    ]
    return _cs_conversation(pl.concat(sessions), cal, rng)


def _cs_conversation(s: pl.DataFrame, cal: Calendar, rng: Rng) -> pl.DataFrame:
    """Response time (slower and often unanswered outside 08:00-23:00; a few exactly 180 s),
    satisfaction, complaints to the platform. Some sessions start exactly on the 08:00 / 23:00
    service-hour edges or a second before."""
    d = Draws(rng, "session_id", "cs")
    edges = {0: 8 * HOUR - SECOND, 1: 8 * HOUR, 2: 23 * HOUR - SECOND, 3: 23 * HOUR}
    edge = _pick(d.u("edge_which"), [0.25, 0.25, 0.25]).replace_strict(edges, return_dtype=pl.Int64)
    s = d.with_columns(s, _midnight=cal.midnight_of(cal.day_of("started_at")))
    s = d.with_columns(
        s,
        started_at=pl.when(d.u("edge") < 0.03)
        .then(pl.col("_midnight") + edge)
        .otherwise("started_at"),
    )
    since_midnight = pl.col("started_at") - pl.col("_midnight")
    service = (since_midnight >= 8 * HOUR) & (since_midnight < 23 * HOUR)
    no_answer_p = pl.when(service).then(pl.col("cs_no_answer_p")).otherwise(0.35)
    off_hours_slowdown = pl.when(service).then(1.0).otherwise(4.0)
    seconds = pl.col("cs_median_s") * off_hours_slowdown * (0.7 * d.z("response")).exp()
    exact = _pick(d.u("exact"), [0.02, 0.01, 0.01])
    response = (
        exact.replace_strict({0: 180, 1: 179, 2: 181}, default=None, return_dtype=pl.Int64)
        .fill_null(seconds.round().cast(pl.Int64))
        .clip(1, 86_400)
    )
    stars = (
        pl.when(d.u("good") < pl.col("cs_good_p"))
        .then(4 + (d.u("stars") < 0.7).cast(pl.Int64))
        .otherwise(1 + (d.u("stars") * 3).floor().cast(pl.Int64))
    )
    s = d.with_columns(
        s,
        first_response_seconds=pl.when(d.u("answered") >= no_answer_p).then(response),
        satisfaction=pl.when(d.u("rated") < 0.6).then(stars),
        escalated_to_platform=d.u("complaint") < pl.col("cs_escalate_p"),
    )
    talk = _hours(_between(d.u("talk"), 2.0 / 60, 1.0))
    timeout = _hours(_between(d.u("timeout"), 1.0 / 6, 24.0))
    closed = pl.col("started_at") + pl.when(pl.col("first_response_seconds").is_null()).then(
        timeout
    ).otherwise(pl.col("first_response_seconds") * SECOND + talk)
    return d.detach(d.with_columns(s, closed_at=closed, _rk="session_id")).drop(
        *_CS_CONDITIONS, "_midnight"
    )
