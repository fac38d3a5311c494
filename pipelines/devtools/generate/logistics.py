"""Fulfilment and the logistics log: what happens to each order after payment (pickup,
cancellation, transit, exceptions and returns, delivery) and the tracking events it leaves."""

from __future__ import annotations

import polars as pl

from pipelines.devtools.generate.calendar import HOUR, SECOND, Calendar, _hours
from pipelines.devtools.generate.randomness import Draws, Rng, _between
from scoring.contract import EVENT_TYPES

EVENT_SLOTS = 16  # event_id = order_id * 16 + tracking slot


def fulfilment(orders: pl.DataFrame, cal: Calendar, rng: Rng) -> pl.DataFrame:
    """Simulate what happens to each order after payment; adds the instants of its tracking events
    (null when an event does not happen) and of its cancellation."""
    orders = _pickup(orders, rng)
    orders = _cancellation(orders, rng)
    orders = _transit(orders, rng)
    orders = _exceptions_and_returns(orders, rng)
    return _delivery(orders, cal, rng)


def _pickup(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Pickup: a shop-specific lognormal delay, a tail of forgotten orders, presale orders shipped
    around their ship-by date, a few exactly at the deadline and some never picked up."""
    d = Draws(rng, "order_id", "pickup")
    deadline = pl.max_horizontal(pl.col("paid_at") + 48 * HOUR, "promised_ship_at")
    normal = pl.col("pickup_median_h") * (0.5 * d.z("delay")).exp()
    delay = (
        pl.when(d.u("tail") < pl.col("pickup_tail_p"))
        .then(_between(d.u("tail_h"), 36.0, 120.0))
        .otherwise(normal)
    )
    ship_by = pl.col("promised_ship_at")
    presale = (
        pl.when(d.u("presale_late") < pl.col("presale_late_p"))
        .then(ship_by + _hours(_between(d.u("presale_h"), 1.0, 48.0)))
        .otherwise(
            pl.max_horizontal(ship_by - _hours(30.0 * d.u("presale_h")), pl.col("paid_at") + HOUR)
        )
    )
    picked = (
        pl.when(d.u("exact") < 0.003)
        .then(deadline)
        .when(ship_by.is_not_null())
        .then(presale)
        .otherwise(pl.col("paid_at") + _hours(delay))
    )
    return d.detach(
        d.with_columns(
            o,
            deadline=deadline,
            picked_up_at=pl.when(d.u("never") >= pl.col("never_pickup_p")).then(picked),
        )
    )


def _cancellation(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Buyers cancel before pickup (often after waiting past the deadline when the shop is slow);
    a few intercept the parcel after pickup, which then goes back to the shop."""
    d = Draws(rng, "order_id", "cancel")
    wish_at = pl.col("paid_at") + _hours(_between(d.u("when") ** 2, 0.05, 96.0))
    unpicked = pl.col("picked_up_at").is_null()
    wants = d.u("wants") < pl.when(unpicked).then(0.6).otherwise(pl.col("cancel_p"))
    o = d.with_columns(o, before_pickup=wants & (unpicked | (wish_at < pl.col("picked_up_at"))))
    intercept = ~pl.col("before_pickup") & ~unpicked & (d.u("intercept") < 0.004)
    return d.detach(
        d.with_columns(
            o,
            cancelled_at=pl.when("before_pickup")
            .then(wish_at)
            .when(intercept)
            .then(pl.col("picked_up_at") + _hours(_between(d.u("intercept_h"), 1.0, 12.0))),
            intercepted=intercept,
            picked_up_at=pl.when(~pl.col("before_pickup")).then("picked_up_at"),
        )
    ).drop("before_pickup")


def _transit(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """1-4 in-transit scans, out for delivery, delivered; some stalls (> 72 h between scans) and
    some gaps of exactly 72 h (not a stall)."""
    d = Draws(rng, "order_id", "transit")
    picked = pl.col("picked_up_at")
    duration = _hours(pl.col("transit_median_h") * (0.35 * d.z("duration")).exp())
    scans = 1 + (d.u("scans") * 4).floor().cast(pl.Int64)
    stall = d.u("stall") < pl.col("stall_p")
    exact = ~stall & (d.u("exact72") < 0.003)
    gap = (
        pl.when(stall)
        .then(72 * HOUR + SECOND + _hours(72.0 * d.u("stall_len")))
        .when(exact)
        .then(72 * HOUR)
        .otherwise(0)
    )
    o = d.with_columns(o, _duration=duration, _scans=scans, _gap=gap, _exact=exact)
    duration, scans, gap, exact = (pl.col(c) for c in ("_duration", "_scans", "_gap", "_exact"))
    scan_columns = {}
    for k in range(4):
        at = picked + (duration * 0.9 * (k + d.u(f"scan{k}")) / (scans + 1)).cast(pl.Int64)
        at = pl.when(exact).then(picked + 72 * HOUR).otherwise(at) if k == 0 else at + gap
        scan_columns[f"in_transit{k}_at"] = pl.when(scans > k).then(at)
    ofd_share = _between(d.u("ofd"), 0.9, 0.98)
    return d.detach(
        d.with_columns(
            o,
            **scan_columns,
            out_for_delivery_at=picked + (duration * ofd_share).cast(pl.Int64) + gap,
            delivered_at=picked + duration + gap,
        )
    ).drop("_duration", "_scans", "_gap", "_exact")


def _exceptions_and_returns(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Exception scans (a third end in a return, the rest arrive late), lost parcels that are never
    delivered, and intercepted parcels returned to the shop."""
    d = Draws(rng, "order_id", "exception")
    picked = pl.col("picked_up_at")
    exception = picked.is_not_null() & (d.u("happens") < pl.col("exception_p"))
    exception_at = picked + (
        (pl.col("delivered_at") - picked) * _between(d.u("at"), 0.1, 0.9)
    ).cast(pl.Int64)
    returned_at = (
        pl.when(exception & (d.u("returned") < 0.35))
        .then(exception_at + _hours(_between(d.u("return_h"), 24.0, 96.0)))
        .when("intercepted")
        .then(pl.col("cancelled_at") + _hours(_between(d.u("return_h"), 24.0, 72.0)))
    )
    o = d.with_columns(
        o,
        exception_at=pl.when(exception).then(exception_at),
        returned_at=returned_at,
        _lost=picked.is_not_null() & ~exception & (d.u("lost") < pl.col("lost_p")),
    )
    lost, returned_at = pl.col("_lost"), pl.col("returned_at")
    late_by = (
        pl.when(pl.col("exception_at").is_not_null())
        .then(_hours(_between(d.u("late_h"), 6.0, 48.0)))
        .otherwise(0)
    )
    delivered = ~(picked.is_null() | returned_at.is_not_null() | lost)
    scans = {
        f"in_transit{k}_at": pl.when(
            ~(lost & (k > 0))
            & (returned_at.is_null() | (pl.col(f"in_transit{k}_at") < returned_at))
        ).then(pl.col(f"in_transit{k}_at"))
        for k in range(4)
    }
    return d.detach(
        d.with_columns(
            o,
            **scans,
            out_for_delivery_at=pl.when(delivered).then(pl.col("out_for_delivery_at") + late_by),
            delivered_at=pl.when(delivered).then(pl.col("delivered_at") + late_by),
        )
    ).drop("_lost")


def _delivery(o: pl.DataFrame, cal: Calendar, rng: Rng) -> pl.DataFrame:
    """Door or locker, some deliveries exactly at the promised instant or seconds before a local
    midnight, and a few recorded twice at the same instant under two event ids."""
    d = Draws(rng, "order_id", "delivery")
    delivered = pl.col("delivered_at")
    before_midnight = (
        cal.midnight_of(cal.day_of(delivered) + 1) - 1 - (d.u("edge_s") * 3 * SECOND).cast(pl.Int64)
    )
    on_promise = (d.u("on_promise") < 0.003) & (
        pl.col("promised_delivery_at") > pl.col("out_for_delivery_at")
    )
    return d.detach(
        d.with_columns(
            o,
            delivered_at=pl.when(on_promise)
            .then("promised_delivery_at")
            .when(d.u("edge") < 0.002)
            .then(pl.max_horizontal(delivered, before_midnight))
            .otherwise(delivered),
            door_delivery=pl.when(d.u("door_null") >= 0.005).then(
                d.u("door") < pl.col("door_share")
            ),
            delivered_twice=delivered.is_not_null() & (d.u("twice") < 0.003),
        )
    )


def tracking_events(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """The logistics log: one row per event of each order (slots become rows); a few events carry a
    wrong shop id (carrier data), a few deliveries are recorded twice with the door flag flipped."""
    no_door = pl.lit(None, pl.Boolean)
    slots = [
        ("picked_up", pl.col("picked_up_at"), no_door),
        *[("in_transit", pl.col(f"in_transit{k}_at"), no_door) for k in range(4)],
        ("exception", pl.col("exception_at"), no_door),
        ("out_for_delivery", pl.col("out_for_delivery_at"), no_door),
        ("delivered", pl.col("delivered_at"), pl.col("door_delivery")),
        (
            "delivered",
            pl.when("delivered_twice").then("delivered_at"),
            ~pl.col("door_delivery").fill_null(False),
        ),
        ("returned", pl.col("returned_at"), no_door),
    ]
    events = []
    for slot, (kind, at, door) in enumerate(slots):
        if kind not in EVENT_TYPES:
            raise ValueError(f"{kind} is not an event type of the schema")
        events.append(
            o.select(
                event_id=pl.col("order_id") * EVENT_SLOTS + slot,
                order_id="order_id",
                shop_id="shop_id",
                event_type=pl.lit(kind),
                event_at=at,
                door_delivery=door,
            ).filter(pl.col("event_at").is_not_null())
        )
    frame = pl.concat(events)
    wrong_shop = rng.u("event_id", "event:wrong_shop") < 0.0005
    return frame.with_columns(
        shop_id=pl.when(wrong_shop).then(pl.col("shop_id") + 1).otherwise("shop_id"),
        _rk="event_id",
    )
