"""Store labels [店铺标签] with hysteresis (SCORING.md 8, reading 12.16).

A label is gained when its value reaches `enter` and kept, once held on D-1, until the value
crosses `exit`. The gap between the two stops a shop hovering at a threshold from flapping in and
out every night. Too little data (n < min_n) or an unknown value always removes the label.
"""

from __future__ import annotations

import datetime as dt
import re
import string

import polars as pl

from scoring.catalog import LABEL_BY_ID, LABELS
from scoring.reshape import to_long
from scoring.rules import Rules
from scoring.shop_score import share

MICROS_PER_HOUR = 3.6e9


def label_values() -> dict[str, tuple[pl.Expr, pl.Expr]]:
    """(value, n) per label over a shop row; n is the count the value is computed over."""
    return {
        "fast_shipping": (
            pl.when(pl.col("picked_up_orders") > 0).then(
                pl.col("pickup_micros") / MICROS_PER_HOUR / pl.col("picked_up_orders")
            ),
            pl.col("picked_up_orders"),
        ),
        "damage_free_return": (
            share("damaged_agreed", "damaged_decided"),
            pl.col("damaged_decided"),
        ),
        "fast_cs_reply": (
            share("response_seconds", "answered_service_sessions"),
            pl.col("answered_service_sessions"),
        ),
        "high_cs_satisfaction": (
            share("cs_satisfaction_rate__num", "cs_satisfaction_rate__den"),
            pl.col("cs_satisfaction_rate__den"),
        ),
        "door_delivery": (
            share("door_delivery_rate__num", "door_delivery_rate__den"),
            pl.col("door_delivery_rate__den"),
        ),
        "return_insurance": (
            share("return_insured_orders", "valid_orders"),
            pl.col("valid_orders"),
        ),
        "top_experience": (pl.col("score"), pl.col("valid_orders")),
    }


def label_candidates(shops: pl.LazyFrame) -> pl.LazyFrame:
    """Long form: shop_id, label, value, n for every shop and label."""
    items = {
        label_id: {"value": value.cast(pl.Float64), "n": n.cast(pl.Int64)}
        for label_id, (value, n) in label_values().items()
    }
    return to_long(shops, ["shop_id"], items, "label")


def _reaches(value: pl.Expr, threshold: pl.Expr, better: pl.Expr) -> pl.Expr:
    """`value` is at least as good as `threshold` in the label's direction."""
    return pl.when(better == "lower").then(value <= threshold).otherwise(value >= threshold)


def _rules_table(rules: Rules) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "label": [label.id for label in LABELS],
            "better": [label.better for label in LABELS],
            "enter": [rules.labels[label.id].enter for label in LABELS],
            "exit": [rules.labels[label.id].exit for label in LABELS],
            "min_n": [rules.labels[label.id].min_n for label in LABELS],
        },
        schema_overrides={"min_n": pl.Int64},
    )


def held_labels(
    candidates: pl.LazyFrame, previous: pl.LazyFrame, rules: Rules, run_date: dt.date
) -> pl.LazyFrame:
    """Labels held on the run date, with `since` carried over from D-1 while the run is unbroken.

    `previous` holds the labels published for D-1 (shop_id, label, since); empty when none.
    """
    known = pl.col("value").is_not_null() & (pl.col("n") >= pl.col("min_n"))
    gains = _reaches(pl.col("value"), pl.col("enter"), pl.col("better"))
    keeps = pl.col("held_before") & _reaches(pl.col("value"), pl.col("exit"), pl.col("better"))
    return (
        candidates.join(_rules_table(rules), on="label", how="inner")
        .join(
            previous.select("shop_id", "label", previous_since="since").with_columns(
                held_before=pl.lit(True)
            ),
            on=["shop_id", "label"],
            how="left",
        )
        .with_columns(pl.col("held_before").fill_null(False))
        .filter(known & (gains | keeps).fill_null(False))
        .with_columns(
            since=pl.when(pl.col("held_before"))
            .then(pl.col("previous_since"))
            .otherwise(pl.lit(run_date))
        )
        .with_columns(display_text=display_text())
        .select("shop_id", "label", "value", "display_text", "since")
    )


_SPEC = re.compile(r"^\.(\d+)([f%])$")


def _fixed(x: pl.Expr, decimals: int) -> pl.Expr:
    """`format(x, f'.{decimals}f')` for a column: round half to even, then pad the decimals."""
    scaled = (x * 10**decimals).round(0, mode="half_to_even").cast(pl.Int64)
    if decimals == 0:
        return scaled.cast(pl.String)
    sign = pl.when(scaled < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    magnitude = scaled.abs()
    whole = (magnitude // 10**decimals).cast(pl.String)
    frac = (magnitude % 10**decimals).cast(pl.String).str.zfill(decimals)
    return pl.concat_str([sign, whole, pl.lit("."), frac])


def _format_field(field: str, spec: str) -> pl.Expr:
    """One `{field:spec}` of a display template, over the label's value."""
    if field == "score_display":
        # 12.16: the display score, shown with one decimal ("体验分 4.8")
        return _fixed((pl.col("value") * 10).floor() / 10, 1)
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"display format spec {spec!r} is not supported")
    decimals, kind = int(match.group(1)), match.group(2)
    if kind == "%":
        # Python's '%' multiplies the float by 100, then formats it as 'f'
        return pl.concat_str([_fixed(pl.col("value") * 100, decimals), pl.lit("%")])
    return _fixed(pl.col("value"), decimals)


def format_template(template: str) -> pl.Expr:
    """A label's display template, applied to every row as Python's str.format would."""
    parts: list[pl.Expr] = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            parts.append(_format_field(field, spec or ""))
    return pl.concat_str(parts)


def display_text() -> pl.Expr:
    expr = pl.when(False).then(pl.lit(None, pl.String))
    for label_id, label in LABEL_BY_ID.items():
        expr = expr.when(pl.col("label") == label_id).then(format_template(label.display))
    return expr
