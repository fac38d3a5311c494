"""Synthetic raw logs for expscore: the inputs of SCORING.md sections 2 and 13.1, day by day.

The generator simulates a marketplace, not a table: shops with a latent quality (that drifts for
some of them) sell items of a few leaf categories; every paid order runs through pickup, transit,
delivery, reviews, refunds and customer-service sessions, and each of these leaves records in the
logs on the business date they are emitted; shops appeal a few orders, refunds and sessions, and
the platform's decisions form the optional fifth log, `appeals`. On top of the simulated truth come
the faults a real feed has: late arrivals, exact duplicates, naive timestamps and other integer
widths in some files, files without the optional `ship_to_region` column, a partition split over
two files, and a small share of deliberately bad rows the loader must quarantine.

Everything is vectorised (Polars expressions, PyArrow compute); the only Python loops are over days,
chunks of orders, logs and a handful of fixed "slots" (version kinds, tracking event kinds).
Randomness is counter-based: each draw is a hash of (seed, stream name, entity id), so a value never
depends on row order, chunk boundaries or on what else was drawn, and the same seed always yields
the same tables.

Timestamps are handled inside as Int64 microseconds since the epoch (UTC) and typed only on writing.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.contract import EVENT_TYPES, LOGS, REFUND_REASONS, RULINGS, LogSchema

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

SHOP_ID_BASE = 100_000
BUYER_ID_BASE = 50_000_000
ORDER_ID_STRIDE = 10**8  # order ids of a day: date.toordinal() * stride + 1, + 2, ...
EVENT_SLOTS = 16  # event_id = order_id * 16 + tracking slot
REFUND_SLOTS = 4  # refund_id = order_id * 4 + refund number
SESSION_SLOTS = 4  # session_id = order_id * 4 + session kind
VERSION_SLOTS = 8  # row key of a version = entity id * 8 + version kind
APPEAL_SLOTS = 16  # appeal_id = order_id * 16 + 2 * subject slot + attempt (see `appeals`)
CHUNK_ORDERS = 200_000  # orders simulated at once (bounds memory; results do not depend on it)
HORIZON_DAYS = 120  # local midnights known beyond the last day (promises, late deliveries)

BAD_ROW_SHARE = 0.002
MAX_BAD_ROW_SHARE = 0.5
ABNORMAL_ORDER_SHARE = 0.008  # orders the risk model flags (fake orders, malicious buyers)
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


# Shops appeal what hurts their score, mostly: per subject, the share appealed when troubled (a
# 1-2 star review; a refund the buyer took to the platform; a complaint or a 1-2 star session)
# and otherwise. Overall about 0.3% of orders, 2% of refunds and 0.5% of sessions.
APPEAL_P = {"order": (0.03, 0.0025), "refund": (0.08, 0.018), "session": (0.03, 0.0035)}
UPHELD_SHARE = 0.4  # of the subjects appealed once
REAPPEAL_SHARE = 0.08  # of the subjects appealed: twice, a first appeal rejected, a second upheld

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

# Local hour-of-day profiles (relative weights): orders peak in the evening, CS chats in the day.
ORDER_HOURS = (3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 5, 5, 5, 5, 5, 6, 7, 9, 10, 9, 6)
SESSION_HOURS = (1, 1, 0.5, 0.5, 0.5, 0.5, 1, 2, 6, 8, 8, 8, 7, 7, 8, 8, 8, 7, 7, 7, 8, 8, 6, 3)


@dataclass(frozen=True)
class Category:
    """A leaf category (industry) and the traits its orders share whatever the shop."""

    category_id: int
    name: str
    popularity: float  # share of shops whose main category it is
    price_cents: int  # median paid amount
    transit_factor: float  # cold chain is faster, bulky goods slower
    promise_share: float  # share of orders shown a delivery promise at checkout
    damage_rate: float  # share of delivered orders that arrive damaged (scaled by shop quality)
    door_share: float  # typical door-delivery share of the category


CATEGORIES = (
    Category(1001, "fresh food", 0.12, 5_900, 0.7, 0.9, 0.015, 0.85),
    Category(1002, "apparel", 0.24, 12_900, 1.0, 0.55, 0.004, 0.55),
    Category(1003, "consumer electronics", 0.12, 59_900, 1.0, 0.7, 0.010, 0.75),
    Category(1004, "home and furniture", 0.16, 8_900, 1.2, 0.6, 0.015, 0.6),
    Category(1005, "beauty", 0.14, 15_900, 1.0, 0.6, 0.006, 0.5),
    Category(1006, "toys", 0.12, 9_900, 1.0, 0.5, 0.006, 0.55),
    Category(1007, "books", 0.10, 4_900, 1.0, 0.5, 0.005, 0.5),
)


# --------------------------------------------------------------------------------------------------
# Randomness


_GOLDEN = pa.scalar(0x9E3779B97F4A7C15, pa.uint64())
_MIX1 = pa.scalar(0xBF58476D1CE4E5B9, pa.uint64())
_MIX2 = pa.scalar(0x94D049BB133111EB, pa.uint64())


def _shr(x: pa.ChunkedArray, n: int) -> pa.ChunkedArray:
    return pc.shift_right(x, pa.scalar(n, pa.uint64()))


@dataclass(frozen=True)
class Rng:
    """Counter-based random numbers: splitmix64 of (seed, stream, key).

    A draw is a pure function of its inputs, so the same order gets the same pickup delay whether it
    is simulated alone or among a million, and streams are independent by name. (NumPy is not
    installed in the project's environment; PyArrow's wrapping uint64 arithmetic does the hashing.)
    """

    seed: int

    def _offset(self, stream: str) -> pa.Scalar:
        digest = hashlib.blake2b(f"{self.seed}:{stream}".encode(), digest_size=8).digest()
        return pa.scalar(int.from_bytes(digest, "little"), pa.uint64())

    def bits(self, keys: pl.Series, stream: str) -> pa.ChunkedArray:
        z = pc.add(pc.multiply(keys.cast(pl.UInt64).to_arrow(), _GOLDEN), self._offset(stream))
        z = pc.multiply(pc.bit_wise_xor(z, _shr(z, 30)), _MIX1)
        z = pc.multiply(pc.bit_wise_xor(z, _shr(z, 27)), _MIX2)
        return pc.bit_wise_xor(z, _shr(z, 31))

    def uniform(self, keys: pl.Series, stream: str) -> pl.Series:
        """Uniform in the open interval (0, 1), 53 bits."""
        top = pc.cast(_shr(self.bits(keys, stream), 11), pa.float64())
        return pl.Series(keys.name, pc.multiply(pc.add(top, 0.5), 2.0**-53))

    def normal(self, keys: pl.Series, stream: str) -> pl.Series:
        """Standard normal by Box-Muller on the two 32-bit halves of one draw."""
        b = self.bits(keys, stream)
        hi = pl.Series(pc.cast(_shr(b, 32), pa.float64())) + 0.5
        lo = pl.Series(
            pc.cast(pc.bit_wise_and(b, pa.scalar(0xFFFFFFFF, pa.uint64())), pa.float64())
        )
        z = (-2.0 * (hi * 2.0**-32).log()).sqrt() * (lo * (2.0 * math.pi * 2.0**-32)).cos()
        return z.alias(keys.name)

    def u(self, key: str | pl.Expr, stream: str) -> pl.Expr:
        """Expression: a uniform draw per row, keyed by `key` (an id column)."""
        return _expr(key).map_batches(
            lambda s: self.uniform(s, stream), return_dtype=pl.Float64, is_elementwise=True
        )

    def z(self, key: str | pl.Expr, stream: str) -> pl.Expr:
        """Expression: a standard normal draw per row, keyed by `key`."""
        return _expr(key).map_batches(
            lambda s: self.normal(s, stream), return_dtype=pl.Float64, is_elementwise=True
        )


def _expr(key: str | pl.Expr) -> pl.Expr:
    return pl.col(key) if isinstance(key, str) else key


class Draws:
    """The named random draws of one simulation step, keyed by an id column.

    `u(name)` / `z(name)` return a column reference and remember the draw; `with_columns` and
    `select` first attach the remembered draws the frame lacks (the arguments are built, and so
    register their draws, before the call), and `detach` drops them at the end of the step. Eager
    Polars re-runs a shared `map_batches` expression at each use; this way each draw runs once.
    """

    def __init__(self, rng: Rng, key: str, stream: str) -> None:
        self._rng, self._key, self._stream = rng, key, stream
        self._columns: dict[str, pl.Expr] = {}

    def _remember(self, kind: str, name: str) -> pl.Expr:
        column = f"__{kind}:{self._stream}:{name}"
        if column not in self._columns:
            draw = self._rng.u if kind == "u" else self._rng.z
            self._columns[column] = draw(self._key, f"{self._stream}:{name}")
        return pl.col(column)

    def u(self, name: str) -> pl.Expr:
        """A uniform draw in (0, 1)."""
        return self._remember("u", name)

    def z(self, name: str) -> pl.Expr:
        """A standard normal draw."""
        return self._remember("z", name)

    def _attach(self, frame: pl.DataFrame) -> pl.DataFrame:
        missing = {c: e for c, e in self._columns.items() if c not in frame.columns}
        return frame.with_columns(**missing) if missing else frame

    def with_columns(self, frame: pl.DataFrame, *exprs: pl.Expr, **named: pl.Expr) -> pl.DataFrame:
        return self._attach(frame).with_columns(*exprs, **named)

    def select(self, frame: pl.DataFrame, *exprs: str | pl.Expr, **named: pl.Expr) -> pl.DataFrame:
        return self._attach(frame).select(*exprs, **named)

    def detach(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.drop([c for c in self._columns if c in frame.columns])


def _pick(u: pl.Expr, probs: Sequence[pl.Expr | float]) -> pl.Expr:
    """Bucket index of a uniform draw: 0 with probability probs[0], 1 with probs[1], ...,
    and len(probs) with the remaining probability (the "none of these" outcome)."""
    index: pl.Expr = pl.lit(0, pl.Int32)
    cumulative: pl.Expr = pl.lit(0.0)
    for p in probs:
        cumulative = cumulative + p
        index = index + (u >= cumulative).cast(pl.Int32)
    return index


def _choose(index: pl.Expr, values: Sequence[str]) -> pl.Expr:
    return index.replace_strict(dict(enumerate(values)), return_dtype=pl.String)


def _lerp(bad: float, good: float, quality: pl.Expr, power: float = 1.0) -> pl.Expr:
    """A rate or delay that moves from `bad` (quality 0) to `good` (quality 1)."""
    return good + (bad - good) * (1.0 - quality) ** power


def _hours(h: pl.Expr) -> pl.Expr:
    return (h * HOUR).cast(pl.Int64)


def _between(u: pl.Expr, lo: float, hi: float) -> pl.Expr:
    return lo + (hi - lo) * u


# --------------------------------------------------------------------------------------------------
# Calendar


@dataclass(frozen=True)
class Calendar:
    """Local midnights of the business time zone as UTC microseconds (DST-exact).

    `midnights[i]` is 00:00 of `start + i` in tz, so day `i` is `[midnights[i], midnights[i+1])` and
    `midnights[i+1]` is the partition cutoff of day `i`.
    """

    start: date
    days: int
    tz: str
    midnights: pl.Series

    @classmethod
    def build(cls, start: date, days: int, tz: str) -> Calendar:
        zone = ZoneInfo(tz)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        micros = [
            (datetime.combine(start + timedelta(days=i), time(), zone) - epoch)
            // timedelta(microseconds=1)
            for i in range(days + HORIZON_DAYS + 1)
        ]
        return cls(start, days, tz, pl.Series("midnight", micros, dtype=pl.Int64))

    def midnight(self, day: int) -> int:
        return int(self.midnights[day])

    def date(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def day_of(self, ts: str | pl.Expr) -> pl.Expr:
        """Local day index of an instant (null stays null; far future maps past the horizon)."""

        def lookup(s: pl.Series) -> pl.Series:
            idx = self.midnights.search_sorted(s.fill_null(0), "right").cast(pl.Int32) - 1
            return idx.zip_with(s.is_not_null(), pl.Series([None], dtype=pl.Int32))

        return _expr(ts).map_batches(lookup, return_dtype=pl.Int32, is_elementwise=True)

    def midnight_of(self, day: pl.Expr) -> pl.Expr:
        """00:00 local of a day index (clamped to the known horizon)."""
        last = self.midnights.len() - 1
        return day.clip(0, last).map_batches(
            lambda s: self.midnights.gather(s), return_dtype=pl.Int64, is_elementwise=True
        )

    def local_time(self, day: int, u: pl.Expr, hour_weights: Sequence[float]) -> pl.Expr:
        """An instant on local day `day`, the hour drawn from a profile, uniform within the hour."""
        total = sum(hour_weights)
        hour = _pick(u, [w / total for w in hour_weights[:-1]])
        within = (u * total - _cumulative_before(hour, hour_weights)) / _weight_of(
            hour, hour_weights
        )
        fraction = ((hour.cast(pl.Float64) + within.clip(0.0, 0.999999)) / 24.0).clip(
            0.0, 0.9999999
        )
        length = self.midnight(day + 1) - self.midnight(day)
        return self.midnight(day) + (fraction * length).cast(pl.Int64)


def _cumulative_before(hour: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    cumulative = [float(sum(weights[:h])) for h in range(len(weights))]
    return hour.replace_strict(dict(enumerate(cumulative)), return_dtype=pl.Float64)


def _weight_of(hour: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    return hour.replace_strict(
        {h: float(w) for h, w in enumerate(weights)}, return_dtype=pl.Float64
    )


# --------------------------------------------------------------------------------------------------
# The marketplace: shops and items (fixed for a run), and each shop's condition on a given day


@dataclass(frozen=True)
class World:
    shops: pl.DataFrame  # one row per shop, row index = shop_idx
    items: pl.DataFrame  # one row per item, grouped by shop (shops.item_offset points here)
    order_cdf: pl.Series  # cumulative share of orders by shop_idx; the last value is 1.0
    buyers: int


def build_world(shops: int, orders_per_day: int, rng: Rng) -> World:
    """Shops of every size and quality, each selling 1-3 categories, and their items."""
    frame = pl.DataFrame({"shop_idx": pl.int_range(0, shops, dtype=pl.Int64, eager=True)})
    frame = frame.with_columns(shop_id=SHOP_ID_BASE + pl.col("shop_idx") + 1)
    frame = _shop_sizes(frame, orders_per_day, rng)
    frame = _shop_categories(frame, rng)
    frame = _shop_quality(frame, rng)
    frame = _shop_policies(frame, rng)
    items = _shop_items(frame, rng)
    frame = frame.with_columns(item_offset=pl.col("n_items").cum_sum() - pl.col("n_items"))
    cdf = frame["share"].cum_sum()
    return World(frame, items, cdf / cdf[-1], buyers=max(10_000, 3 * orders_per_day))


def _shop_sizes(frame: pl.DataFrame, orders_per_day: int, rng: Rng) -> pl.DataFrame:
    """Heavy-tailed order shares: a lognormal body plus ~8% tiny shops with an absolute rate of a
    few orders a month, so some shops stay below the 30-order minimum at any scale."""
    d = Draws(rng, "shop_id", "shop:size")
    frame = d.with_columns(
        frame,
        tiny=d.u("tiny") < 0.08,
        body=(1.2 * d.z("body")).exp(),
        tiny_rate=_between(d.u("rate"), 0.03, 1.6) / orders_per_day,
        item_factor=(0.7 * d.z("items")).exp(),
    )
    tiny_total = frame.filter("tiny")["tiny_rate"].sum()
    tiny_scale = min(1.0, 0.3 / tiny_total) if tiny_total > 0 else 1.0
    body_total = frame.filter(~pl.col("tiny"))["body"].sum()
    body_scale = (1.0 - tiny_total * tiny_scale) / body_total if body_total > 0 else 0.0
    frame = frame.with_columns(
        share=pl.when("tiny")
        .then(pl.col("tiny_rate") * tiny_scale)
        .otherwise(pl.col("body") * body_scale)
    )
    relative_size = pl.col("share") * frame.height
    n_items = 1 + 4 * pl.col("item_factor") * relative_size.sqrt()
    return frame.with_columns(n_items=n_items.round().clip(1, 999).cast(pl.Int64)).drop(
        "body", "tiny_rate", "item_factor"
    )


def _shop_categories(frame: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """A main category by popularity and up to two distinct side categories."""
    k = len(CATEGORIES)
    ids = {i: c.category_id for i, c in enumerate(CATEGORIES)}
    popularity = [c.popularity / sum(c.popularity for c in CATEGORIES) for c in CATEGORIES]
    d = Draws(rng, "shop_id", "shop:cat")
    main = _pick(d.u("main"), popularity[:-1])
    offset2 = 1 + (d.u("second") * (k - 1)).floor().cast(pl.Int32)
    offset3 = 1 + (offset2 + (d.u("third") * (k - 2)).floor().cast(pl.Int32)) % (k - 1)
    return d.detach(
        d.with_columns(
            frame,
            cat1=main.replace_strict(ids, return_dtype=pl.Int64),
            cat2=((main + offset2) % k).replace_strict(ids, return_dtype=pl.Int64),
            cat3=((main + offset3) % k).replace_strict(ids, return_dtype=pl.Int64),
            n_cats=1 + (d.u("n") < 0.5).cast(pl.Int32) + (d.u("n") < 0.15).cast(pl.Int32),
        )
    )


def _shop_quality(frame: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """A latent quality in [0, 1] with per-dimension deviations; for a quarter of the shops a slow
    sinusoidal drift, and for some a crisis of a few days (more often for good shops: a sales spike
    they cannot handle), so that scores and labels cross thresholds both ways over the days."""
    d = Draws(rng, "shop_id", "shop:q")
    drifting = d.u("drifting") < 0.25
    q_base = (0.62 + 0.24 * d.z("base")).clip(0.0, 1.0)
    crisis = d.u("crisis") < pl.when(q_base > 0.8).then(0.25).otherwise(0.08)
    return d.detach(
        d.with_columns(
            frame,
            q_base=q_base,
            crisis_start=pl.when(crisis).then(_between(d.u("crisis_start"), 5.0, 50.0).floor()),
            crisis_days=_between(d.u("crisis_days"), 4.0, 12.0).floor(),
            crisis_depth=_between(d.u("crisis_depth"), 0.25, 0.5),
            dev_product=0.08 * d.z("product"),
            dev_logistics=0.08 * d.z("logistics"),
            dev_service=0.08 * d.z("service"),
            drift_amp=pl.when(drifting).then(_between(d.u("amp"), 0.08, 0.3)).otherwise(0.0),
            drift_period=_between(d.u("period"), 20.0, 60.0),
            drift_phase=_between(d.u("phase"), 0.0, 2 * math.pi),
        )
    )


def _shop_policies(frame: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Choices that are not "quality": door delivery, return insurance, presale, a fast CS team,
    a local warehouse (next-day delivery). Some shops sit right on a label threshold."""
    d = Draws(rng, "shop_id", "shop:policy")
    cat_door = pl.col("cat1").replace_strict({c.category_id: c.door_share for c in CATEGORIES})
    door_kind = _pick(d.u("door"), [0.12, 0.05])  # 0 door specialist, 1 hovers near 0.9, 2 typical
    ins_kind = _pick(d.u("ins"), [0.15, 0.05, 0.25])  # always, hovers near 0.8, sometimes, rarely
    door, insurance = d.u("door_v"), d.u("ins_v")
    return d.detach(
        d.with_columns(
            frame,
            door_base=pl.when(door_kind == 0)
            .then(_between(door, 0.93, 1.0))
            .when(door_kind == 1)
            .then(_between(door, 0.86, 0.9))
            .otherwise((cat_door + _between(door, -0.25, 0.1)).clip(0.05, 0.95)),
            door_amp=pl.when(door_kind == 1).then(0.06).otherwise(0.0),
            insurance_base=pl.when(ins_kind == 0)
            .then(_between(insurance, 0.85, 1.0))
            .when(ins_kind == 1)
            .then(_between(insurance, 0.77, 0.81))
            .when(ins_kind == 2)
            .then(_between(insurance, 0.3, 0.75))
            .otherwise(_between(insurance, 0.0, 0.3)),
            insurance_amp=pl.when(ins_kind == 1).then(0.06).otherwise(0.0),
            presale_share=pl.when(d.u("presale") < 0.15)
            .then(_between(d.u("presale_v"), 0.05, 0.4))
            .otherwise(0.002),
            fast_cs=d.u("fast_cs") < 0.08,
            warehouse=d.u("warehouse") < 0.1,
            promise_bias_days=(d.u("promise") < 0.3).cast(pl.Int64),  # optimistic checkout estimate
        )
    )


def _shop_items(frame: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Items of each shop; the first (most popular) is of the main category, the others mostly."""
    items = (
        frame.select("shop_idx", "shop_id", "cat1", "cat2", "cat3", "n_cats", "n_items")
        .with_columns(k=pl.int_ranges(0, "n_items"))
        .explode("k")
        .with_columns(item_id=pl.col("shop_id") * 1000 + pl.col("k"))
    )
    d = Draws(rng, "item_id", "item")
    u = d.u("category")
    side = pl.when((pl.col("n_cats") == 3) & (u >= 0.9)).then("cat3").otherwise("cat2")
    category = pl.when((pl.col("k") == 0) | (pl.col("n_cats") == 1) | (u < 0.7)).then("cat1")
    return d.select(
        items, "item_id", "shop_idx", category_id=category.otherwise(side).cast(pl.Int64)
    )


def shop_conditions(world: World, day: int) -> pl.DataFrame:
    """Each shop's operating parameters on day `day`: its quality (with drift) mapped to rates and
    delays. Higher quality means faster pickup and delivery, fewer problems, faster service."""
    shops = world.shops
    wave = (2 * math.pi * day / pl.col("drift_period") + pl.col("drift_phase")).sin()
    in_crisis = (pl.col("crisis_start") <= day) & (
        day < pl.col("crisis_start") + pl.col("crisis_days")
    )
    crisis = pl.when(in_crisis).then(pl.col("crisis_depth")).otherwise(0.0)
    q = (pl.col("q_base") + pl.col("drift_amp") * wave - crisis).clip(0.0, 1.0)
    qp = (q + pl.col("dev_product")).clip(0.0, 1.0)
    ql = (q + pl.col("dev_logistics")).clip(0.0, 1.0)
    qs = (q + pl.col("dev_service")).clip(0.0, 1.0)
    fresh = pl.col("cat1") == 1001
    transit_factor = pl.col("cat1").replace_strict(
        {c.category_id: c.transit_factor for c in CATEGORIES}
    )
    damage_rate = pl.col("cat1").replace_strict({c.category_id: c.damage_rate for c in CATEGORIES})
    pickup_median = _lerp(52.0, 5.0, ql, 1.3) * pl.when(fresh).then(0.6).otherwise(1.0)
    transit_median = _lerp(80.0, 16.0, ql) * transit_factor
    return shops.select(
        "shop_idx",
        q=q,
        q_service=qs,
        pickup_median_h=pl.when("warehouse")
        .then(pickup_median.clip(None, 4.0))
        .otherwise(pickup_median),
        pickup_tail_p=_lerp(0.12, 0.0, ql, 2),
        never_pickup_p=_lerp(0.015, 0.0, ql, 3),
        presale_late_p=_lerp(0.3, 0.0, ql, 2),
        cancel_p=_lerp(0.06, 0.01, ql),
        transit_median_h=pl.when("warehouse").then(10.0).otherwise(transit_median),
        exception_p=_lerp(0.07, 0.0008, ql, 2),
        stall_p=_lerp(0.05, 0.0005, ql, 2),
        lost_p=_lerp(0.01, 0.0002, ql, 2),
        door_share=(pl.col("door_base") + pl.col("door_amp") * wave).clip(0.0, 1.0),
        insurance_share=(pl.col("insurance_base") + pl.col("insurance_amp") * wave).clip(0.0, 1.0),
        presale_share="presale_share",
        promise_bias_days="promise_bias_days",
        quality_refund_p=_lerp(0.09, 0.0008, qp, 2),
        damage_p=damage_rate * (1.5 - ql),
        negative_review_p=_lerp(0.18, 0.002, qp, 2),
        refusal_p=_lerp(0.25, 0.0, qs, 2),
        damaged_agree_p=_lerp(0.6, 1.0, qs, 1.5),
        handling_median_h=_lerp(70.0, 0.5, qs, 2),
        cs_median_s=pl.when("fast_cs")
        .then(_lerp(14.0, 4.0, qs))
        .otherwise(_lerp(400.0, 4.0, qs, 2)),
        cs_no_answer_p=_lerp(0.15, 0.002, qs, 2),
        cs_good_p=_lerp(0.55, 0.998, qs, 1.5),
        cs_escalate_p=_lerp(0.02, 0.0002, qs, 2),
    )


# --------------------------------------------------------------------------------------------------
# Orders of a day: who bought what, when, for how much, with which promises


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


# --------------------------------------------------------------------------------------------------
# Fulfilment: pickup, transit, delivery, returns


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


# --------------------------------------------------------------------------------------------------
# Reviews and risk flags


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


# --------------------------------------------------------------------------------------------------
# Tracking events


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


# --------------------------------------------------------------------------------------------------
# Refunds


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


# --------------------------------------------------------------------------------------------------
# Customer-service sessions


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


# --------------------------------------------------------------------------------------------------
# Appeals


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


# --------------------------------------------------------------------------------------------------
# Feed faults: late arrival, duplicates, bad rows


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


# --------------------------------------------------------------------------------------------------
# Writing


_CANONICAL_INTS = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "TINYINT": pa.int8()}
_NARROW_INTS = {"shop_id": pa.int32(), "buyer_id": pa.int32(), "category_id": pa.int16()}


@dataclass(frozen=True)
class FileStyle:
    """How one partition is written: the canonical form, or one of the variants the spec allows."""

    naive_timestamps: bool = False
    integer_width: str = "canonical"  # or "wide" (all int64) or "narrow" (some ids int32/int16)
    reversed_columns: bool = False
    extra_column: bool = False
    split: bool = False  # two files, part-0 and part-1
    omit_optional: bool = False  # the optional columns (ship_to_region) left out: they read as null


def file_style(rng: Rng, log: str, day: int) -> FileStyle:
    """Most partitions are canonical; ~8% use naive timestamps, ~10% another integer width, ~10%
    reversed column order, ~5% an extra column, ~20% are split over two files, and ~15% leave the
    log's optional columns out (only orders have one)."""
    key = pl.Series("day", [day], dtype=pl.Int64)

    def draw(name: str) -> float:
        return rng.uniform(key, f"style:{log}:{name}")[0]

    width = draw("width")
    return FileStyle(
        naive_timestamps=draw("naive") < 0.08,
        integer_width="wide" if width < 0.05 else "narrow" if width < 0.1 else "canonical",
        reversed_columns=draw("order") < 0.1,
        extra_column=draw("extra") < 0.05,
        split=draw("split") < 0.2,
        omit_optional=draw("optional") < 0.15,
    )


def arrow_schema(schema: LogSchema, style: FileStyle = FileStyle()) -> pa.Schema:
    """The Parquet schema of a log file (canonical types from scoring.contract, or a variant)."""
    fields = []
    for column in schema.columns:
        if column.optional and style.omit_optional:
            continue
        if column.kind == "timestamp":
            arrow_type = pa.timestamp("us", tz=None if style.naive_timestamps else "UTC")
        elif column.kind == "bool":
            arrow_type = pa.bool_()
        elif column.kind == "string":
            arrow_type = pa.string()
        elif style.integer_width == "wide":
            arrow_type = pa.int64()
        elif style.integer_width == "narrow" and column.name in _NARROW_INTS:
            arrow_type = _NARROW_INTS[column.name]
        else:
            arrow_type = _CANONICAL_INTS[column.duck_type]
        fields.append(pa.field(column.name, arrow_type))
    return pa.schema(fields)


def _to_arrow(frame: pl.DataFrame, schema: LogSchema, style: FileStyle) -> pa.Table:
    target = arrow_schema(schema, style)
    table = frame.select(schema.column_names).to_arrow()
    columns = []
    for f in target:
        columns.append(table.column(f.name).cast(f.type))  # Int64 microseconds -> timestamp
    table = pa.Table.from_arrays(columns, schema=target)
    if style.extra_column:
        table = table.append_column("ingest_source", pa.array(["backfill"] * table.num_rows))
    if style.reversed_columns:
        table = table.select(list(reversed(table.column_names)))
    return table


def write_partition(
    out: Path, log: str, day_date: date, frame: pl.DataFrame, style: FileStyle, rng: Rng
) -> None:
    """Write one partition (replacing any Parquet file left there by an earlier run). An optional
    log (appeals) writes no partition for a day without rows: a missing partition means no rows
    that day (13.1)."""
    schema = LOGS[log]
    folder = out / log / f"dt={day_date.isoformat()}"
    for old in sorted(folder.glob("*.parquet")):
        old.unlink()
    if schema.optional and frame.height == 0:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return
    folder.mkdir(parents=True, exist_ok=True)
    table = _to_arrow(frame, schema, style)
    if style.split and table.num_rows > 1:
        mask = (rng.uniform(frame["_rk"], f"{log}:split") < 0.5).to_arrow()
        pq.write_table(table.filter(pc.invert(mask)), folder / "part-0.parquet")
        pq.write_table(table.filter(mask), folder / "part-1.parquet")
    else:
        pq.write_table(table, folder / "part-0.parquet")


# --------------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class GenerationReport:
    """What was written: rows per log, and the deliberately bad rows per log and reason code."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOGS, 0))
    bad_rows: dict[str, dict[str, int]] = field(
        default_factory=lambda: {log: dict.fromkeys(kinds, 0) for log, kinds in BAD_KINDS.items()}
    )


# The in-memory shape of a log: schema columns (timestamps as Int64 microseconds, every integer
# Int64) plus the row key `_rk` that keys the feed-fault draws.
_INTERNAL_TYPES = {"int": pl.Int64, "timestamp": pl.Int64, "bool": pl.Boolean, "string": pl.String}


def _internal(rows: pl.DataFrame, log: str) -> pl.DataFrame:
    """The log's columns in the generator's internal types; an optional column the rows do
    not carry is written as null, as a file without it reads (13.1)."""
    columns = LOGS[log].columns
    return rows.select(
        *[
            (pl.col(c.name) if c.name in rows.columns else pl.lit(None))
            .cast(_INTERNAL_TYPES[c.kind])
            .alias(c.name)
            for c in columns
        ],
        "_rk",
    )


def _internal_empty(log: str) -> pl.DataFrame:
    columns = {c.name: _INTERNAL_TYPES[c.kind] for c in LOGS[log].columns}
    return pl.DataFrame(schema={**columns, "_rk": pl.Int64})


class Outbox:
    """Records waiting for the business date they are emitted on. They wait in Arrow IPC files in a
    scratch folder, so memory holds about one chunk of orders whatever the run length."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._files = 0

    def put(self, log: str, rows: pl.DataFrame) -> None:
        """File rows that carry their emission day in `_emit`."""
        for (day,), part in rows.partition_by("_emit", as_dict=True, include_key=False).items():
            folder = self._folder / log / str(day)
            folder.mkdir(parents=True, exist_ok=True)
            self._files += 1
            part.write_ipc(folder / f"{self._files:09d}.arrow", compression="lz4")

    def take(self, log: str, day: int) -> pl.DataFrame:
        """All rows of `log` emitted on `day`, in the order they were filed (then forgotten)."""
        folder = self._folder / log / str(day)
        files = sorted(folder.glob("*.arrow"))
        if not files:
            return _internal_empty(log)
        frame = pl.concat([pl.read_ipc(f) for f in files], rechunk=True)
        shutil.rmtree(folder)
        return frame


def simulate_orders(
    world: World, conditions: pl.DataFrame, cal: Calendar, rng: Rng, day: int, orders: range
) -> dict[str, pl.DataFrame]:
    """Everything some orders paid on `day` will ever write, per log, each row with the version
    time that places it in a partition (rows due after the last day are dropped later)."""
    paid = paid_orders(world, conditions, cal, rng, day, orders)
    paid = buyer_feedback(fulfilment(paid, cal, rng), rng)
    refunds = refund_lifecycle(refund_requests(paid, rng), rng)
    sessions = cs_sessions(paid, cal, rng, day)
    logs = {
        "orders": order_versions(paid),
        "refunds": refund_versions(refunds),
        "logistics": tracking_events(paid, rng),
        "cs_sessions": sessions,
        "appeals": appeals(paid, refunds, sessions, rng),
    }
    return {log: _internal(rows, log) for log, rows in logs.items()}


def generate(
    out: Path,
    start: date,
    days: int,
    shops: int,
    orders_per_day: int,
    seed: int,
    tz: str = "Asia/Shanghai",
    bad_rows: float = BAD_ROW_SHARE,
) -> GenerationReport:
    """Generate and write the raw logs day by day; see `generate_raw`. Returns the full report.

    A day's orders are simulated in chunks (every draw is keyed by an id, so the chunking does not
    change a single value); what a chunk emits on later days waits in the outbox, a scratch folder
    inside `out` that is removed at the end."""
    if days < 1 or shops < 1 or orders_per_day < 1:
        raise ValueError("days, shops and orders_per_day must be positive")
    if not 0 <= bad_rows <= MAX_BAD_ROW_SHARE:
        raise ValueError(f"the share of bad rows must be between 0 and {MAX_BAD_ROW_SHARE}")
    if orders_per_day >= ORDER_ID_STRIDE:
        raise ValueError(f"orders_per_day must be below {ORDER_ID_STRIDE}")
    out = Path(out)
    cal = Calendar.build(start, days, tz)
    rng = Rng(seed)
    world = build_world(shops, orders_per_day, rng)
    report = GenerationReport()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".generate-", dir=out) as scratch:
        outbox = Outbox(Path(scratch))
        for day in range(days):
            conditions = shop_conditions(world, day)
            for first in range(0, orders_per_day, CHUNK_ORDERS):
                chunk = range(first, min(first + CHUNK_ORDERS, orders_per_day))
                for log, rows in simulate_orders(world, conditions, cal, rng, day, chunk).items():
                    outbox.put(log, emit(rows, log, cal, rng))
            for log in LOGS:
                frame = spoil(outbox.take(log, day), log, cal, rng, day, bad_rows)
                write_partition(out, log, cal.date(day), frame, file_style(rng, log, day), rng)
                report.rows[log] += frame.height
                for reason, count in frame["_bad"].drop_nulls().value_counts().rows():
                    report.bad_rows[log][reason] += count
    return report


def generate_raw(
    out: Path,
    start: date,
    days: int,
    shops: int,
    orders_per_day: int,
    seed: int,
    tz: str = "Asia/Shanghai",
    bad_rows: float = BAD_ROW_SHARE,
) -> dict[str, int]:
    """Write synthetic raw logs `<out>/<log>/dt=YYYY-MM-DD/part-0.parquet` (sometimes also
    `part-1.parquet`) for `dt = start .. start + days - 1` and return the rows written per log:
    the four logs of section 2 every day, and `appeals` (13.1) on the days it has rows.

    `shops` shops share `orders_per_day` paid orders a day (heavy-tailed; a few shops are tiny).
    Records are placed by the business date (in `tz`) on which they are emitted; records due after
    the last day are not written. `bad_rows` is the share of each partition's rows broken on
    purpose (at least one row, unless 0: clean data). The same arguments give the same tables.
    """
    return generate(out, start, days, shops, orders_per_day, seed, tz, bad_rows).rows
