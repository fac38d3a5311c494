"""The faults of a real feed on top of the simulated truth: records emitted on a later business
date (late arrivals), records sent twice, and a small share of deliberately bad rows, each
broken for exactly one quarantine reason."""

from __future__ import annotations

import polars as pl

from pipelines.devtools.generate.calendar import Calendar, _hours
from pipelines.devtools.generate.randomness import Draws, Rng, _choose
from scoring.contract import LOGS

BAD_ROW_SHARE = 0.002
MAX_BAD_ROW_SHARE = 0.5
LATE_SHARE = {
    "orders": 0.02,
    "refunds": 0.03,
    "logistics": 0.01,
    "cs_sessions": 0.01,
    "appeals": 0.03,
}
DUPLICATE_SHARE = {
    "orders": 0.003,
    "refunds": 0.003,
    "logistics": 0.005,
    "cs_sessions": 0.004,
    "appeals": 0.01,
}
RESENT_SHARE = {"appeals": 1.0}  # of the copies, those re-sent 1-2 days later (others: 0.3)


def emit(rows: pl.DataFrame, log: str, cal: Calendar, rng: Rng) -> pl.DataFrame:
    """Assign each record the business date it is emitted on (`_emit`, a day index): the local
    date of its version time, 1-6 days later for late arrivals; some records are sent twice (mostly
    in the same partition, sometimes re-sent a day or two later: RESENT_SHARE). Records due after
    the last day are dropped."""
    d = Draws(rng, "_rk", log)
    late_p, duplicate_p = LATE_SHARE[log], DUPLICATE_SHARE[log]
    resent_p = RESENT_SHARE.get(log, 0.3)
    # One draw decides whether and how late: given u < p, u / p is again uniform.
    late = d.u("late") < late_p
    late_days = pl.when(late).then(1 + ((d.u("late") / late_p) ** 2 * 6).floor().cast(pl.Int32))
    copied = d.u("duplicate") < duplicate_p
    resent = d.u("duplicate") / duplicate_p  # < resent_p: re-sent 1-2 days later
    resent_days = pl.when(resent < resent_p).then(
        1 + (resent / (resent_p / 2)).floor().cast(pl.Int32)
    )
    version = LOGS[log].version_column
    rows = d.with_columns(rows, _emit=cal.day_of(version) + late_days.fill_null(0))
    copies = rows.filter(copied).with_columns(_emit=pl.col("_emit") + resent_days.fill_null(0))
    return d.detach(pl.concat([rows, copies])).filter(pl.col("_emit") < cal.days)


BAD_KINDS: dict[str, tuple[str, ...]] = {
    "orders": (
        "null_in_required_column",
        "rating_out_of_range",
        "negative_value",
        "updated_before_created",
        "at_or_after_partition_cutoff",
    ),
    "refunds": (
        "null_in_required_column",
        "unknown_enum_value",
        "negative_value",
        "updated_before_created",
        "at_or_after_partition_cutoff",
        "decision_time_mismatch",
    ),
    "logistics": (
        "null_in_required_column",
        "unknown_enum_value",
        "at_or_after_partition_cutoff",
    ),
    "cs_sessions": (
        "null_in_required_column",
        "rating_out_of_range",
        "negative_value",
        "at_or_after_partition_cutoff",
    ),
    "appeals": (  # exactly the reasons 13.1 allows
        "null_in_required_column",
        "unknown_enum_value",
        "at_or_after_partition_cutoff",
    ),
}

# Per log: the columns a bad row may null, the enum values, rating and amount it may break, and
# the creation time its version time may precede.
_NULLABLE_VICTIMS = {
    "orders": ("shop_id", "paid_at", "amount_cents", "is_abnormal", "updated_at"),
    "refunds": ("order_id", "requested_at", "reason", "platform_help", "amount_cents"),
    "logistics": ("order_id", "event_type", "event_at"),
    "cs_sessions": ("shop_id", "started_at", "escalated_to_platform", "closed_at"),
    "appeals": ("shop_id", "subject", "subject_id", "outcome", "decided_at"),
}
_UNKNOWN_ENUMS = {
    "refunds": {
        "refund_type": "exchange",
        "reason": "Quality",
        "seller_decision": "accepted",
        "ruling": "split",
    },
    "logistics": {"event_type": "signed"},
    "appeals": {"subject": "review", "outcome": "Upheld"},
}
_RATING = {"orders": "review_rating", "cs_sessions": "satisfaction"}
_NEGATIVE = {
    "orders": "amount_cents",
    "refunds": "amount_cents",
    "cs_sessions": "first_response_seconds",
}
_CREATED = {"orders": "paid_at", "refunds": "requested_at"}


def spoil(
    frame: pl.DataFrame,
    log: str,
    cal: Calendar,
    rng: Rng,
    day: int,
    share: float = BAD_ROW_SHARE,
) -> pl.DataFrame:
    """Break `share` of a partition's rows (at least one, unless `share` is 0, or the log is
    optional: a few appeals a day with one broken would fail the quarantine gate every night)
    so that each is rejected for exactly one reason; the reasons rotate with the day so that
    each shows up even at small scale. Adds `_bad` (the reason code, null for good rows)."""
    frame = frame.with_columns(_bad=pl.lit(None, pl.String))
    least = 0 if LOGS[log].optional else 1
    broken = max(least, round(share * frame.height))
    if frame.height == 0 or share == 0 or broken == 0:
        return frame
    kinds = BAD_KINDS[log]
    pick = rng.uniform(frame["_rk"], f"{log}:bad:pick")
    chosen = pick <= pick.bottom_k(broken).max()
    order = pl.col("_pick").rank("ordinal") - 1  # by the keyed draw, not by row position
    victims = (
        frame.filter(chosen)
        .with_columns(_pick=pick.filter(chosen))
        .with_columns(_bad=_choose((order + day) % len(kinds), kinds))
        .drop("_pick")
    )
    victims = _break_rows(victims, log, cal.midnight(day + 1), rng)
    return pl.concat([frame.filter(~chosen), victims])  # row order carries no meaning


def _break_rows(victims: pl.DataFrame, log: str, cutoff: int, rng: Rng) -> pl.DataFrame:
    """Apply to each row the damage its `_bad` reason names, and nothing an earlier rule catches."""
    d = Draws(rng, "_rk", f"{log}:bad")
    bad = pl.col("_bad")
    changes: dict[str, pl.Expr] = {}

    def set_where(column: str, condition: pl.Expr, value: pl.Expr) -> None:
        current = changes.get(column, pl.col(column))
        changes[column] = pl.when(condition).then(value).otherwise(current)

    nulled = _NULLABLE_VICTIMS[log]
    which = (d.u("null") * len(nulled)).floor().cast(pl.Int32)
    for i, column in enumerate(nulled):
        set_where(column, (bad == "null_in_required_column") & (which == i), pl.lit(None))
    unknown = _UNKNOWN_ENUMS.get(log, {})
    which = (d.u("enum") * max(1, len(unknown))).floor().cast(pl.Int32)
    for i, (column, value) in enumerate(unknown.items()):
        set_where(column, (bad == "unknown_enum_value") & (which == i), pl.lit(value))
    if log in _RATING:
        out_of_range = pl.when(d.u("rating") < 0.5).then(0).otherwise(6)
        set_where(_RATING[log], bad == "rating_out_of_range", out_of_range)
    if log in _NEGATIVE:
        column = _NEGATIVE[log]
        set_where(column, bad == "negative_value", -pl.col(column).fill_null(0) - 1)
    version = LOGS[log].version_column
    if log in _CREATED:
        before = pl.col(_CREATED[log]) - 1 - _hours(6.0 * d.u("earlier"))
        set_where(version, bad == "updated_before_created", before)
    beyond = (
        pl.when(d.u("beyond") < 0.5).then(cutoff).otherwise(cutoff + _hours(3.0 * d.u("beyond")))
    )
    set_where(version, bad == "at_or_after_partition_cutoff", beyond)
    if log == "refunds":
        mismatch = bad == "decision_time_mismatch"
        has_decision = pl.col("seller_decision").is_not_null()
        set_where("decided_at", mismatch & has_decision, pl.lit(None, pl.Int64))
        decided_alone = pl.col("requested_at") + _hours(24.0 * d.u("decided"))
        set_where("decided_at", mismatch & ~has_decision, decided_alone)
    return d.detach(d.with_columns(victims, **changes))
