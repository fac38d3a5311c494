"""Rendering a what-if as text: the cell formatting (shared with the HTML page), the summary a
terminal shows and the JSON document a review tool reads.

Rendering is vectorised like the rest: every table cell is a Polars string expression and a
table is one `concat_str` per row joined in Polars, so no Python loop walks report rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from scoring.analysis.whatif import BONUS_DRIVER, NEGLIGIBLE

if TYPE_CHECKING:  # the report's type only: pipelines.analyst.whatif imports this module
    from pipelines.analyst.whatif import WhatIfReport

REPORT_NAME = "expscore what-if"


# --------------------------------------------------------------------------------------------
# formatting expressions (shared by the text summary and the HTML)


def fixed(x: pl.Expr, decimals: int, signed: bool = False) -> pl.Expr:
    """`x` with exactly `decimals` decimals (`+` on positives when `signed`); null stays null.

    Polars has no format specs, so this builds `f"{x:+.3f}"` from an integer of the scaled value.
    """
    scaled = (x * 10**decimals).round(0).cast(pl.Int64)
    sign = (
        pl.when(scaled < 0)
        .then(pl.lit("-"))
        .when((scaled > 0) & pl.lit(signed))
        .then(pl.lit("+"))
        .otherwise(pl.lit(""))
    )
    whole = (scaled.abs() // 10**decimals).cast(pl.String)
    if decimals == 0:
        return pl.concat_str([sign, whole])
    frac = (scaled.abs() % 10**decimals).cast(pl.String).str.zfill(decimals)
    return pl.concat_str([sign, whole, pl.lit("."), frac])


def pct(x: pl.Expr, decimals: int = 1) -> pl.Expr:
    return pl.concat_str([fixed(x * 100, decimals), pl.lit("%")])


def pp(x: pl.Expr) -> pl.Expr:
    """A change of a share, in percentage points."""
    return pl.concat_str([fixed(x * 100, 2, signed=True), pl.lit(" pp")])


def category(x: pl.Expr) -> pl.Expr:
    return x.cast(pl.String).fill_null("none")


def arrow(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    return pl.concat_str([old.fill_null("—"), pl.lit(" → "), new.fill_null("—")])


def arrow_if_changed(old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """`old → new`, or just the value when it did not change (a band, a tier)."""
    return pl.when(old.eq_missing(new)).then(old.fill_null("—")).otherwise(arrow(old, new))


def driver_text(drivers: pl.Expr) -> pl.Expr:
    """`platform_help_rate -0.044 (value 0.0061, score 4.39 → 3.89), bonus -0.050`.

    The effect on the shop score first, then the smoothed value the knots were applied to
    (`old → new` only when it changed, i.e. when `k` changed) and the indicator score.
    """
    d = pl.element().struct.field
    value = (
        pl.when(d("smoothed_value_old") == d("smoothed_value_new"))
        .then(fixed(d("smoothed_value_new"), 4))
        .otherwise(arrow(fixed(d("smoothed_value_old"), 4), fixed(d("smoothed_value_new"), 4)))
    )
    detail = pl.concat_str(
        [
            pl.lit(" (value "),
            value,
            pl.lit(", score "),
            arrow(fixed(d("indicator_score_old"), 2), fixed(d("indicator_score_new"), 2)),
            pl.lit(")"),
        ]
    )
    one = pl.concat_str(
        [
            d("indicator"),
            pl.lit(" "),
            fixed(d("effect"), 3, signed=True),
            pl.when(d("indicator") == BONUS_DRIVER).then(pl.lit("")).otherwise(detail),
        ]
    )
    return drivers.list.eval(one).list.join(", ").replace("", None).fill_null("—")


def _joined(frame: pl.DataFrame, line: pl.Expr, separator: str) -> str:
    """One string per row, joined: the vectorised way to turn a small frame into text."""
    if frame.is_empty():
        return ""
    return frame.select(line.str.join(separator)).item()


# --------------------------------------------------------------------------------------------
# text summary


def summary_lines(report: WhatIfReport) -> list[str]:
    """What a terminal shows: the verdict in a few lines, the detail is in the HTML / JSON."""
    f = report.frames
    s = f["summary"].row(0, named=True)
    changes = report.rules_changes
    lines = [
        f"{REPORT_NAME} {report.run_date}: {report.base.version} ({report.base.source}) → "
        f"{report.new.version} ({report.new.source})",
        f"  rules that differ: {changes.height}"
        + (" (" + _joined(changes, pl.col("rule"), ", ") + ")" if changes.height else ""),
        "  facts: "
        + ("computed once, shared by both rule sets" if report.facts_shared else "per rule set"),
        f"  shops: {s['shops']} (scored {s['scored_old']} → {s['scored_new']}); band changed "
        f"{s['band_changed']} (up {s['moved_up']}, down {s['moved_down']}, other "
        f"{s['moved_other']}); score down {s['score_down']}, up {s['score_up']}",
    ]
    shares = f["shares"].filter(pl.col("count_change") != 0)
    lines.append(
        "  shares changed: "
        + _joined(
            shares,
            pl.concat_str(
                [
                    pl.col("metric"),
                    pl.lit(" "),
                    arrow(pct(pl.col("share_old")), pct(pl.col("share_new"))),
                    pl.lit(" ("),
                    pp(pl.col("share_change")),
                    pl.lit(")"),
                ]
            ),
            "; ",
        )
        or "none"
    )
    weights = f["shop_weight_by_category"].filter(pl.col("target_weight_change").abs() > NEGLIGIBLE)
    lines.append(
        "  target traffic weight by main category: "
        + (
            _joined(
                weights,
                pl.concat_str(
                    [
                        category(pl.col("main_category_id")),
                        pl.lit(" "),
                        fixed(pl.col("target_weight_change"), 2, signed=True),
                        pl.lit(" ("),
                        pp(pl.col("target_weight_share_change")),
                        pl.lit(")"),
                    ]
                ),
                ", ",
            )
            or "unchanged"
        )
    )
    labels = f["labels"].filter((pl.col("gained") > 0) | (pl.col("lost") > 0))
    lines.append(
        "  labels: "
        + (
            _joined(
                labels,
                pl.format("{} +{} -{}", pl.col("label"), pl.col("gained"), pl.col("lost")),
                ", ",
            )
            or "no change"
        )
    )
    for name, title in (("top_losses", "largest loss"), ("top_gains", "largest gain")):
        top = f[name].head(1)
        if top.height:
            lines.append(
                f"  {title}: "
                + _joined(
                    top,
                    pl.concat_str(
                        [
                            pl.lit("shop "),
                            pl.col("shop_id").cast(pl.String),
                            pl.lit(" (category "),
                            category(pl.col("main_category_id")),
                            pl.lit("), target weight "),
                            arrow(
                                fixed(pl.col("target_weight_old"), 3),
                                fixed(pl.col("target_weight_new"), 3),
                            ),
                            pl.lit(", drivers: "),
                            driver_text(pl.col("drivers")),
                        ]
                    ),
                    "",
                )
            )
    lines.extend(f"  note: {note}" for note in report.notes)
    lines.extend(f"  wrote {path}" for path in report.written)
    return lines


# --------------------------------------------------------------------------------------------
# JSON


def _records(frame: pl.DataFrame, columns: Sequence[str] | None = None) -> list[dict]:
    return (frame.select(columns) if columns else frame).to_dicts()


def _matrix(grid: pl.DataFrame, keys: Sequence[str] = ()) -> pl.DataFrame:
    """A sorted migration grid folded into rows (old band) of counts (new band)."""
    rows = grid.group_by(*keys, "band_old", maintain_order=True).agg(pl.col("shops"))
    return rows.group_by(*keys, maintain_order=True).agg(matrix=pl.col("shops"))


MOVER_COLUMNS = (
    "shop_id",
    "main_category_id",
    "band_old",
    "band_new",
    "score_old",
    "score_new",
    "score_change",
    "target_weight_old",
    "target_weight_new",
    "target_weight_change",
    "weight_old",
    "weight_new",
    "weight_change",
    "refund_only_tier_old",
    "refund_only_tier_new",
    "drivers",
)


def report_json(report: WhatIfReport) -> dict[str, Any]:
    """The report for a review tool: every section, numbers unrounded."""
    f = report.frames
    moved = f["shop_changes"].filter(pl.col("direction") != "same")
    return {
        "report": REPORT_NAME,
        "run_date": report.run_date.isoformat(),
        "raw": str(report.raw),
        "out": str(report.out),
        "base_rules": {"version": report.base.version, "source": report.base.source},
        "new_rules": {"version": report.new.version, "source": report.new.source},
        "identical_rules": report.identical_rules,
        "facts_shared": report.facts_shared,
        "notes": report.notes,
        "summary": f["summary"].row(0, named=True),
        "rules_changes": [  # a handful of rules, not data rows
            {**change, "old": json.loads(change["old"]), "new": json.loads(change["new"])}
            for change in _records(report.rules_changes)
        ],
        "rules_file_diff": report.file_diff,
        "band_migration": {
            "bands": list(report.bands),
            "overall": _matrix(f["migration"]).row(0, named=True)["matrix"]
            if f["migration"].height
            else [],
            "by_category": _records(_matrix(f["migration_by_category"], ["main_category_id"])),
            "moves_by_category": _records(f["moves_by_category"]),
            "shops_moved": _records(
                moved,
                ["shop_id", "main_category_id", "band_old", "band_new", "score_old", "score_new"],
            ),
        },
        "shares": _records(f["shares"]),
        "traffic_weight": {
            "shops_by_main_category": _records(f["shop_weight_by_category"]),
            "items_by_category": _records(f["item_weight_by_category"]),
            "top_gains": _records(f["top_gains"], MOVER_COLUMNS),
            "top_losses": _records(f["top_losses"], MOVER_COLUMNS),
        },
        "labels": _records(f["labels"]),
    }
