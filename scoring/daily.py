"""One business date, end to end: current state in, the six published tables out (LazyFrames).

raw current state -> facts -> shop sums -> indicators -> scores -> labels / weights -> tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from scoring.activity import ShopSums
from scoring.contract import TABLE_KEYS, TABLE_SCHEMAS
from scoring.indicators import indicator_counts
from scoring.labels import held_labels, label_candidates
from scoring.product import item_scores
from scoring.rules import Rules
from scoring.shop_score import scored_indicators, shop_scores
from scoring.weights import item_traffic_weights, shop_traffic_weights
from scoring.window import Window


def _finish(frame: pl.LazyFrame, table: str, run_date: dt.date, rules: Rules) -> pl.LazyFrame:
    """Select the published columns with their types, add dt and rules_version, sort by key."""
    schema = TABLE_SCHEMAS[table]
    return (
        frame.select([pl.col(c).cast(t) for c, t in schema.items()])
        .with_columns(dt=pl.lit(run_date, pl.Date), rules_version=pl.lit(rules.version))
        .sort(TABLE_KEYS[table])
    )


@dataclass(frozen=True)
class DayFacts:
    """Everything about a date that does not depend on the rules' weights, knots or thresholds.

    Only the window (time zone, length and exemptions) shapes it, so one `DayFacts` can be
    scored under several rule sets that share a window (the what-if report does exactly that).
    """

    window: Window
    items: pl.LazyFrame  # one row per item sold in V: its paid and problem orders
    activity: pl.LazyFrame  # one row per shop of shop_scores: its sums


def part_sums(
    by_order: dict[str, pl.LazyFrame], by_refund: pl.LazyFrame, by_session: pl.LazyFrame
) -> tuple[ShopSums, pl.LazyFrame]:
    """Per-shop sums and per-item counts of one part of the window: a shard of the window
    state, or all of it. Sums of disjoint parts add up (`add_up`, `merge_item_counts`).

    `by_order` are the part's `scoring.settling.order_sums`, `by_refund` its `refund_side` and
    `by_session` its `session_side` (a shard sends what its night changes in them).
    """
    sums = ShopSums(
        orders=by_order["orders"],
        refunds=by_refund,
        sessions=by_session,
        categories=by_order["categories"],
    )
    return sums, by_order["items"]


def score_facts(
    facts: DayFacts,
    rules: Rules,
    previous_labels: pl.LazyFrame,
    previous_weights: pl.LazyFrame,
) -> dict[str, pl.LazyFrame]:
    """indicators -> scores -> labels / weights: the six output tables (not yet collected)."""
    run_date = facts.window.run_date
    indicators, dimensions = scored_indicators(indicator_counts(facts.activity), rules)
    shops = shop_scores(facts.activity, dimensions, rules)
    labels = held_labels(label_candidates(shops), previous_labels, rules, run_date)
    items = item_scores(facts.items, rules)
    tables = {
        "shop_scores": shops,
        "shop_indicators": indicators,
        "item_scores": items,
        "shop_labels": labels,
        "shop_traffic_weights": shop_traffic_weights(shops, previous_weights, rules),
        "item_traffic_weights": item_traffic_weights(items, rules),
    }
    return {name: _finish(frame, name, run_date, rules) for name, frame in tables.items()}


def rules_window(rules: Rules, run_date: dt.date) -> Window:
    return Window(run_date, rules.window_days, rules.timezone, rules.exemptions)
