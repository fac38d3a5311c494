"""A day's paid orders: who bought what, when, for how much, with which promises; the buyers'
reviews and the risk flags; and the orders log, one version per change (the change log the
refunds log shares)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from pipelines.devtools.generate.calendar import SECOND, Calendar, _hours
from pipelines.devtools.generate.randomness import Draws, Rng, _between, _pick
from pipelines.devtools.generate.world import CATEGORIES, World

BUYER_ID_BASE = 50_000_000
ORDER_ID_STRIDE = 10**8  # order ids of a day: date.toordinal() * stride + 1, + 2, ...
VERSION_SLOTS = 8  # row key of a version = entity id * 8 + version kind
ABNORMAL_ORDER_SHARE = 0.008  # orders the risk model flags (fake orders, malicious buyers)

# The buyers' provinces: ISO 3166-2:CN codes of the 31 mainland provinces (without "CN-"), each
# with a relative share of orders; the coastal provinces and the big cities buy the most. A buyer
# lives in one of them; about 1% of orders carry no region (unknown).
REGIONS = (
    ("GD", 13.0), ("ZJ", 9.5), ("JS", 8.5), ("SH", 6.0), ("BJ", 5.5), ("SD", 5.0), ("SC", 4.2),
    ("HA", 4.0), ("FJ", 3.8), ("HB", 3.5), ("HE", 3.3), ("HN", 3.0), ("AH", 3.0), ("LN", 2.3),
    ("SN", 2.0), ("CQ", 2.0), ("GX", 1.9), ("JX", 1.8), ("YN", 1.6), ("TJ", 1.4), ("SX", 1.3),
    ("HL", 1.2), ("GZ", 1.2), ("JL", 0.9), ("NM", 0.9), ("XJ", 0.8), ("GS", 0.7), ("HI", 0.6),
    ("NX", 0.25), ("QH", 0.2), ("XZ", 0.1),
)  # fmt: skip
UNKNOWN_REGION_SHARE = 0.01

# Local hour-of-day profile (relative weights) of payments: orders peak in the evening (the CS
# chats' profile is in sessions.py).
ORDER_HOURS = (3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 5, 5, 5, 5, 5, 6, 7, 9, 10, 9, 6)


def paid_orders(
    world: World, conditions: pl.DataFrame, cal: Calendar, rng: Rng, day: int, orders: range
) -> pl.DataFrame:
    """Orders number `orders` (0-based) of those paid on local day `day`, with the day's conditions
    of their shop attached."""
    first_id = cal.date(day).toordinal() * ORDER_ID_STRIDE + 1
    ids = pl.int_range(first_id + orders.start, first_id + orders.stop, eager=True)
    frame = pl.DataFrame({"order_id": ids})
    d = Draws(rng, "order_id", "order")
    cdf, shops, items = world.order_cdf, world.shops, world.items
    frame = d.with_columns(
        frame,
        shop_idx=d.u("shop").map_batches(
            lambda s: cdf.search_sorted(s, "right").cast(pl.Int64).clip(0, cdf.len() - 1),
            return_dtype=pl.Int64,
        ),
    )
    popular_first = d.u("item") ** 2 * pl.lit(shops["n_items"]).gather("shop_idx")
    frame = d.with_columns(
        frame,
        shop_id=pl.lit(shops["shop_id"]).gather("shop_idx"),
        item_row=pl.lit(shops["item_offset"]).gather("shop_idx")
        + popular_first.floor().cast(pl.Int64),
    )
    frame = d.with_columns(
        frame,
        item_id=pl.lit(items["item_id"]).gather("item_row"),
        category_id=pl.lit(items["category_id"]).gather("item_row"),
        buyer_id=BUYER_ID_BASE + (d.u("buyer") * world.buyers).floor().cast(pl.Int64),
        paid_at=_payment_time(cal, day, d.u("paid"), d.u("edge")),
    )
    frame = d.detach(frame).drop("item_row")
    frame = frame.hstack(conditions.drop("shop_idx").select(pl.all().gather(frame["shop_idx"])))
    return _checkout_terms(frame, cal, rng)


def _payment_time(cal: Calendar, day: int, u: pl.Expr, edge: pl.Expr) -> pl.Expr:
    """Evening-heavy payment times; 0.2% within five seconds of a local midnight, on either side of
    the day, so partition assignment and window edges get exercised."""
    start, cutoff = cal.midnight(day), cal.midnight(day + 1)
    offset = (u * 5 * SECOND).cast(pl.Int64)
    return (
        pl.when(edge < 0.001)
        .then(start + offset)
        .when(edge < 0.002)
        .then(cutoff - 1 - offset)
        .otherwise(cal.local_time(day, u, ORDER_HOURS))
    )


_REGION_CODES = pl.Series("ship_to_region", [code for code, _ in REGIONS], dtype=pl.String)
_REGION_CDF = pl.Series([weight for _, weight in REGIONS]).cum_sum() / sum(w for _, w in REGIONS)


def _region_of(u: pl.Series) -> pl.Series:
    """The province of a uniform draw, by the regions' shares."""
    index = _REGION_CDF.search_sorted(u, "right").clip(0, _REGION_CODES.len() - 1)
    return _REGION_CODES.gather(index)


def _checkout_terms(frame: pl.DataFrame, cal: Calendar, rng: Rng) -> pl.DataFrame:
    """Amount, return insurance, presale ship-by date and the delivery promise shown at checkout:
    the end of a local day a few days after payment (or after the ship-by date), and the region
    shipped to: the buyer's home province, or unknown (null) for about 1% of orders."""
    d = Draws(rng, "order_id", "order")
    price = pl.col("category_id").replace_strict({c.category_id: c.price_cents for c in CATEGORIES})
    promise_share = pl.col("category_id").replace_strict(
        {c.category_id: c.promise_share for c in CATEGORIES}
    )
    amount = (price * (0.6 * d.z("amount")).exp()).round().cast(pl.Int64)
    presale = d.u("presale") < pl.col("presale_share")
    lead_days = ((pl.col("pickup_median_h") + pl.col("transit_median_h")) / 24.0).ceil()
    base_day = cal.day_of(pl.coalesce("promised_ship_at", "paid_at"))
    promise_day = (
        base_day + lead_days.cast(pl.Int32) + 1 - pl.col("promise_bias_days").cast(pl.Int32)
    )
    home = rng.u("buyer_id", "buyer:region").map_batches(
        _region_of, return_dtype=pl.String, is_elementwise=True
    )
    frame = d.with_columns(
        frame,
        ship_to_region=pl.when(d.u("region_known") >= UNKNOWN_REGION_SHARE).then(home),
        amount_cents=pl.when(d.u("gift") < 0.001).then(0).otherwise(amount.clip(100)),
        return_insurance=d.u("insurance") < pl.col("insurance_share"),
        promised_ship_at=pl.when(presale).then(
            pl.col("paid_at") + _hours(_between(d.u("presale_days"), 50.0, 240.0))
        ),
    )
    return d.detach(
        d.with_columns(
            frame,
            promised_delivery_at=pl.when(d.u("promise") < promise_share).then(
                cal.midnight_of(promise_day + 1) - SECOND
            ),
        )
    )


def buyer_feedback(o: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Reviews after delivery (worse after an exception or a broken promise) and risk-model flags,
    some raised at payment, some days later, a few lifted again."""
    d = Draws(rng, "order_id", "feedback")
    delivered = pl.col("delivered_at")
    late = (delivered > pl.col("promised_delivery_at")).fill_null(False)
    bad_trip = pl.col("exception_at").is_not_null() | late
    negative_p = pl.col("negative_review_p") + pl.when(bad_trip).then(0.1).otherwise(0.0)
    positive = 3 + _pick(d.u("stars"), [0.1, 0.25])
    flagged_at = (
        pl.when(d.u("flag_now") < 0.6)
        .then("paid_at")
        .otherwise(pl.col("paid_at") + _hours(_between(d.u("flag_h"), 2.0, 120.0)))
    )
    o = d.with_columns(
        o,
        review_at=pl.when(delivered.is_not_null() & (d.u("reviews") < 0.4)).then(
            delivered + _hours(_between(d.u("review_h") ** 2, 0.5, 240.0))
        ),
        rating=pl.when(d.u("negative") < negative_p)
        .then(1 + (d.u("which") < 0.5).cast(pl.Int64))
        .otherwise(positive.cast(pl.Int64)),
        flagged_at=pl.when(d.u("abnormal") < ABNORMAL_ORDER_SHARE).then(flagged_at),
    )
    return d.detach(
        d.with_columns(
            o,
            cleared_at=pl.when(d.u("cleared") < 0.1).then(
                pl.col("flagged_at") + _hours(_between(d.u("clear_h"), 24.0, 72.0))
            ),
        )
    )


def _at_or_before(event: str, ts: pl.Expr) -> pl.Expr:
    return (pl.col(event) <= ts).fill_null(False)


def _change_log(
    entities: pl.DataFrame,
    key: str,
    version_times: Sequence[pl.Expr],
    state_at: Callable[[pl.Expr], dict[str, str | pl.Expr]],
) -> pl.DataFrame:
    """One row per entity and (non-null) version time, carrying the state as of that time; the row
    key `_rk` = id * VERSION_SLOTS + the version's position in `version_times`."""
    ts = pl.col("updated_at")
    return pl.concat(
        entities.with_columns(updated_at=at)
        .filter(ts.is_not_null())
        .select(**state_at(ts), updated_at=ts, _rk=pl.col(key) * VERSION_SLOTS + kind)
        for kind, at in enumerate(version_times)
    )


def order_versions(o: pl.DataFrame) -> pl.DataFrame:
    """The orders change log: a version at payment, then one per later change (cancellation, review,
    risk flag raised after payment, flag lifted), each carrying the full state as of its time."""
    fixed = ("order_id", "shop_id", "item_id", "category_id", "buyer_id", "paid_at", "amount_cents")
    promises = ("promised_ship_at", "promised_delivery_at", "return_insurance", "ship_to_region")

    def state_at(ts: pl.Expr) -> dict[str, str | pl.Expr]:
        return {
            **{c: c for c in (*fixed, *promises)},
            "cancelled_at": pl.when(_at_or_before("cancelled_at", ts)).then("cancelled_at"),
            "review_rating": pl.when(_at_or_before("review_at", ts)).then("rating"),
            "is_abnormal": _at_or_before("flagged_at", ts) & ~_at_or_before("cleared_at", ts),
        }

    times = [
        pl.col("paid_at"),
        pl.col("cancelled_at"),
        pl.col("review_at"),
        pl.when(pl.col("flagged_at") > pl.col("paid_at")).then("flagged_at"),
        pl.col("cleared_at"),
    ]
    return _change_log(o, "order_id", times, state_at)
