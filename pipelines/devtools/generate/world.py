"""The marketplace the generator simulates: shops of every size and quality with their items and
leaf categories (fixed for a run), and each shop's condition on a given day (its quality, with
drift and crises, mapped to rates and delays)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from pipelines.devtools.generate.randomness import Draws, Rng, _between, _lerp, _pick

SHOP_ID_BASE = 100_000


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
