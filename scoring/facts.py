"""From current state to facts: one row per order of V, per refund, per session (SCORING.md 3).

Every later number is a sum over these rows, so each fact is named for what it means and computed
once. Inputs are current-state LazyFrames with UTC-aware timestamps (see `pipelines.ingest.load`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from scoring.appeals import counts_nowhere
from scoring.exemptions import exempt_ship_by
from scoring.window import Window, local_date

PICKUP_GRACE = dt.timedelta(hours=48)
STALL_GAP = dt.timedelta(hours=72)
SERVICE_HOURS = (8, 23)  # [start, end) local hour of day: CS is expected to answer
QUALITY_REASONS = ("quality", "not_as_described")
PROBLEM_REASONS = ("quality", "not_as_described", "damaged")


def in_window(column: str, window: Window) -> pl.Expr:
    """`start(D) <= t < cutoff(D)`; null is not in the window."""
    return (
        pl.col(column)
        .is_between(pl.lit(window.start), pl.lit(window.cutoff), closed="left")
        .fill_null(False)
    )


def valid_paid_orders(orders: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """V: current orders paid in the window that neither the risk model nor an upheld appeal
    removed (`orders` carry `appeal_upheld`: `scoring.appeals.mark_upheld`)."""
    return orders.filter(in_window("paid_at", window) & ~counts_nowhere())


def appealed_orders(orders: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """The orders an upheld appeal took out of V: they would be in it otherwise (13.4)."""
    return orders.filter(
        in_window("paid_at", window) & ~pl.col("is_abnormal") & pl.col("appeal_upheld")
    )


def tracking_facts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per tracked order: milestones and trail, none of which moves with the cutoff.

    `events` must be the events that exist at the run's cutoff (3). Then `pickup(o)`,
    `delivered(o)` with its door flag, the exception flag and the trail E (4: the events from
    pickup up to delivery) are fixed per order, so the incremental state can keep this row and
    only recompute it for orders whose events changed; only "stalled until the cutoff" is left to
    `window_order_facts`. At the earliest `delivered` instant the smallest `event_id` decides
    `door_delivery`, and null counts as not at the door (12.5). `last_event_at` (any type) is
    what `merge_tracking` needs to know that later events only extend the row.
    """
    is_type = pl.col("event_type").__eq__
    milestones = events.group_by("order_id").agg(
        pickup_at=pl.col("event_at").filter(is_type("picked_up")).min(),
        has_exception=is_type("exception").any(),
        last_event_at=pl.col("event_at").max(),
    )
    first_delivery = (
        events.filter(is_type("delivered"))
        .group_by("order_id")
        .agg(
            delivered_at=pl.col("event_at").min(),
            delivered_at_door=pl.col("door_delivery")
            .sort_by("event_at", "event_id")
            .first()
            .fill_null(False),
        )
    )
    tracking = milestones.join(first_delivery, on="order_id", how="left")
    return tracking.join(tracking_trail(events, tracking), on="order_id", how="left")


def tracking_trail(events: pl.LazyFrame, tracking: pl.LazyFrame) -> pl.LazyFrame:
    """Per picked-up order: the longest gap inside its trail E and E's last time (4, 12.6).

    E = times of the order's events (any type) from pickup(o) and, when delivered, up to
    delivered(o). The gap is in whole microseconds, so the state stores it as an integer.
    """
    tracked = tracking.filter(pl.col("pickup_at").is_not_null()).select(
        "order_id", "pickup_at", "delivered_at"
    )
    trail = events.join(tracked, on="order_id", how="inner").filter(
        (pl.col("event_at") >= pl.col("pickup_at"))
        & (pl.col("delivered_at").is_null() | (pl.col("event_at") <= pl.col("delivered_at")))
    )
    # one sort of all trails and a shift, not a sort per order: 6x faster on a night's events
    ordered = trail.select("order_id", "event_at").sort("order_id", "event_at")
    same_order = pl.col("order_id") == pl.col("order_id").shift(1)
    gap = pl.when(same_order).then(pl.col("event_at") - pl.col("event_at").shift(1))
    return (
        ordered.with_columns(gap_us=gap.dt.total_microseconds())
        .group_by("order_id")
        .agg(
            longest_trail_gap_us=pl.col("gap_us").max(),
            last_trail_event_at=pl.col("event_at").max(),
        )
    )


def later_events_only(stored: pl.LazyFrame, events: pl.LazyFrame) -> pl.LazyFrame:
    """Per order of `events`: `extends` when all of them come after its stored row's events.

    True when the order has no stored row, or its new events are all strictly later than its
    `last_event_at`: then `merge_tracking` gives exactly the row of all events together. An
    event landing inside a stored trail can split its longest gap, which the row cannot undo.
    """
    return (
        events.group_by("order_id")
        .agg(first_new_at=pl.col("event_at").min())
        .join(stored.select("order_id", "last_event_at"), on="order_id", how="left")
        .select(
            "order_id",
            extends=pl.col("last_event_at").is_null()
            | (pl.col("first_new_at") > pl.col("last_event_at")),
        )
    )


def merge_tracking(stored: pl.LazyFrame, later: pl.LazyFrame) -> pl.LazyFrame:
    """`tracking_facts` of each order of `later` over its stored events and `later` together.

    `stored` holds `tracking_facts` rows of earlier events (an order may have none); `later`
    holds events that all come after them (`later_events_only`). Then pickup and delivery are
    the stored ones where there are any (later events cannot be earlier), the exception flag is
    either side's, and the trail E can only grow at its open end: a trail still open (picked up,
    not delivered) goes on from its last time, so the later events are summarised together
    with a `picked_up` anchor at that time, and the longest gap is the larger of the two. A
    closed trail stays as it is; without a stored pickup, E is the later events' own (empty
    when the order was delivered before its first pickup). Nightly runs use this to fold a
    day's events into the stored rows instead of re-reading every event of every order.
    """
    stored = stored.join(later.select("order_id").unique(), on="order_id", how="semi")
    open_trail = pl.col("pickup_at").is_not_null() & pl.col("delivered_at").is_null()
    anchors = stored.filter(open_trail).select(
        "order_id",
        event_id=pl.lit(None, pl.Int64),
        event_type=pl.lit("picked_up"),
        event_at=pl.col("last_trail_event_at"),
        door_delivery=pl.lit(None, pl.Boolean),
    )
    columns = ["order_id", "event_id", "event_type", "event_at", "door_delivery"]
    anchored = pl.concat([later.select(columns), anchors], how="vertical_relaxed")
    earlier = stored.select("order_id", pl.all().exclude("order_id").name.prefix("stored_"))
    merged = tracking_facts(anchored).join(earlier, on="order_id", how="left")
    picked_up = pl.col("stored_pickup_at").is_not_null()
    delivered = pl.col("stored_delivered_at").is_not_null()

    def trail(column: str, grown: pl.Expr) -> pl.Expr:
        return (
            pl.when(picked_up & delivered)
            .then(pl.col(f"stored_{column}"))
            .when(picked_up)
            .then(grown)
            .when(~delivered)
            .then(pl.col(column))
        )  # else delivered before any pickup: E is empty

    return merged.select(
        "order_id",
        pickup_at=pl.coalesce("stored_pickup_at", "pickup_at"),
        has_exception=pl.col("stored_has_exception").fill_null(False) | pl.col("has_exception"),
        last_event_at=pl.col("last_event_at"),
        delivered_at=pl.coalesce("stored_delivered_at", "delivered_at"),
        delivered_at_door=pl.when(delivered)
        .then(pl.col("stored_delivered_at_door"))
        .otherwise(pl.col("delivered_at_door")),
        longest_trail_gap_us=trail(
            "longest_trail_gap_us",
            pl.max_horizontal("stored_longest_trail_gap_us", "longest_trail_gap_us"),
        ),
        last_trail_event_at=trail("last_trail_event_at", pl.col("last_trail_event_at")),
    )


def stalled(window: Window) -> pl.Expr:
    """A gap of more than 72 h inside E, or, undelivered, from E's last time to the cutoff."""
    inner_gap = pl.col("longest_trail_gap_us") > STALL_GAP // dt.timedelta(microseconds=1)
    gap_to_cutoff = pl.lit(window.cutoff) - pl.col("last_trail_event_at")
    open_gap = pl.col("delivered_at").is_null() & (gap_to_cutoff > STALL_GAP)
    return inner_gap.fill_null(False) | open_gap.fill_null(False)


def order_refund_flags(refunds: pl.LazyFrame) -> pl.LazyFrame:
    """Per order with current, normal refunds: a quality refund (4), its first problem refund (7).

    The problem refund keeps its request time so that "requested before the cutoff" is decided
    per run while the row itself does not depend on the cutoff.
    """
    normal = refunds.filter(~counts_nowhere())
    return normal.group_by("order_id").agg(
        has_quality_refund=pl.col("reason").is_in(QUALITY_REASONS).any(),
        first_problem_requested_at=pl.col("requested_at")
        .filter(pl.col("reason").is_in(PROBLEM_REASONS))
        .min(),
    )


def pickup_deadline(window: Window) -> pl.Expr:
    """deadline(o): the later of paid_at + 48 h and the promised ship-by time, when set, and
    of the latest `ship_by` of the exemptions the order matches (13.3)."""
    grace = pl.col("paid_at") + PICKUP_GRACE
    promised = (
        pl.when(pl.col("promised_ship_at") > grace)
        .then(pl.col("promised_ship_at"))
        .otherwise(grace)
    )
    return pl.max_horizontal(promised, exempt_ship_by(window.exemptions, window.tz))


def orders_of_v(flagged: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """V with its facts, from current orders with their tracking facts and refund flags.

    The window state keeps both on its order rows, folding each night's events and refunds
    into them (`merge_tracking`, `order_refund_flags`).
    """
    return window_order_facts(valid_paid_orders(flagged, window), window)


def window_order_facts(orders_v: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """Orders of V joined to their tracking and refund rows -> the facts that need the cutoff.

    Stalls, problem refunds, deadlines and next-day delivery are decided here, once, for the
    window state's shards and for a whole window alike.
    """
    next_day_end = local_date("paid_at", window.tz) + pl.duration(days=2)
    problem_refund = pl.col("first_problem_requested_at") < pl.lit(window.cutoff)
    return orders_v.with_columns(
        pl.col("has_exception", "has_quality_refund", "delivered_at_door").fill_null(False),
        stalled=stalled(window),
        has_problem_refund=problem_refund.fill_null(False),
        deadline=pickup_deadline(window),
        delivered_next_day=(local_date("delivered_at", window.tz) < next_day_end).fill_null(False),
    )


def asks_platform_help() -> pl.Expr:
    """A refund escalated to the platform and not ruled the buyer's responsibility (a null
    ruling counts): a help event on the day it was escalated."""
    return pl.col("platform_help") & (pl.col("ruling") != "buyer_responsible").fill_null(True)


def dated_refunds(refunds: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    """A refund's two ways into the sums, each with the local `day` that puts it there: its
    request (`in_r`, or `appealed` when an upheld appeal removed it) on the day it was
    requested, and its help event (`is_help`) on the day it was escalated. Summed over the days
    of a window: R (`in_r`, for the refund's own shop, 12.4) and the window's help events, whose
    ruling is not the buyer's responsibility (a null ruling counts)."""
    requested = refunds.filter(~pl.col("is_abnormal")).with_columns(
        day=local_date("requested_at", tz),
        in_r=~pl.col("appeal_upheld"),
        is_help=pl.lit(False),
        appealed=pl.col("appeal_upheld"),
    )
    helped = refunds.filter(
        ~counts_nowhere() & asks_platform_help() & pl.col("escalated_at").is_not_null()
    ).with_columns(
        day=local_date("escalated_at", tz),
        in_r=pl.lit(False),
        is_help=pl.lit(True),
        appealed=pl.lit(False),
    )
    return pl.concat([requested, helped])


def dated_sessions(sessions: pl.LazyFrame, tz: str) -> pl.LazyFrame:
    """Sessions with the local `day` they started on (the day that puts a session in C) and
    whether they started in local service hours."""
    local_hour = pl.col("started_at").dt.convert_time_zone(tz).dt.hour()
    start, end = SERVICE_HOURS
    return sessions.with_columns(
        day=local_date("started_at", tz),
        in_service_hours=(local_hour >= start) & (local_hour < end),
    )
