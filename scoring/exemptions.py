"""Exemptions (SCORING.md 13.3): what the merchant could not control leaves the indicators it names.

An exemption is rules data: a range of local dates, optionally a list of buyer regions, a later
pickup deadline (`ship_by`) and the indicators it takes rows out of (`exclude_from`). Everything
here is a row-level expression over a fact table, so an exemption changes which rows a sum counts
and never how a sum is made: `scoring.indicators.ratio_sums` counts a row that matches in the
indicator's `excluded` sum instead of its numerator and denominator.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from scoring.catalog import Source
from scoring.rules import ExemptionRule
from scoring.window import Window, local_date

# The time whose local date puts a row of each fact table in an exemption's date range (13.3).
MATCHED_BY: dict[Source, str] = {
    "orders": "paid_at",
    "refunds": "requested_at",
    "sessions": "started_at",
}


def matches(exemption: ExemptionRule, source: Source, tz: str) -> pl.Expr:
    """The row of `source` matches `exemption`.

    Its local date is in the range, and, for an order, its `ship_to_region` is one of the
    exemption's regions when it names any (a null region matches no list). A refund or a
    session carries no region: it matches only an exemption for every region.
    """
    in_range = local_date(MATCHED_BY[source], tz).is_between(
        pl.lit(exemption.paid_from), pl.lit(exemption.paid_to)
    )
    if not exemption.regions:
        return in_range.fill_null(False)
    if source != "orders":
        return pl.lit(False)
    in_regions = pl.col("ship_to_region").is_in(list(exemption.regions))
    return (in_range & in_regions).fill_null(False)


def excluded(
    indicator: str, source: Source, exemptions: Iterable[ExemptionRule], tz: str
) -> pl.Expr:
    """The row is taken out of `indicator`: it matches an exemption that names it (the union
    of the lists of every exemption the row matches)."""
    naming = [matches(e, source, tz) for e in exemptions if indicator in e.exclude_from]
    return pl.any_horizontal(naming) if naming else pl.lit(False)


def exempt_ship_by(exemptions: Iterable[ExemptionRule], tz: str) -> pl.Expr:
    """The latest `ship_by` of the exemptions an order matches; null when none gives one."""
    later = [
        pl.when(matches(e, "orders", tz)).then(pl.lit(e.ship_by, pl.Datetime("us", "UTC")))
        for e in exemptions
        if e.ship_by is not None
    ]
    return pl.max_horizontal(later) if later else pl.lit(None, pl.Datetime("us", "UTC"))


MATCHED_PREFIX = "matched__"


def matched_counts(
    source: Source, exemptions: Iterable[ExemptionRule], tz: str, among: pl.Expr | None = None
) -> list[pl.Expr]:
    """Per exemption, how many rows of `source` (of those `among`: the window's population)
    it matches (`matched_column`): kept among the per-shop sums, so the manifest can say what
    each exemption reached (13.4)."""
    counted = pl.lit(True) if among is None else among
    return [
        (matches(e, source, tz) & counted).cast(pl.Int64).sum().alias(matched_column(source, e))
        for e in exemptions
    ]


def matched_column(source: Source, exemption: ExemptionRule) -> str:
    return f"{MATCHED_PREFIX}{source}__{exemption.name}"


LOG_OF_SOURCE: dict[Source, str] = {
    "orders": "orders",
    "refunds": "refunds",
    "sessions": "cs_sessions",
}


def exemption_account(activity: pl.DataFrame, exemptions: Iterable[ExemptionRule]) -> list[dict]:
    """Each exemption as the rules give it, with the rows it matched per log over the window's
    population (orders of V, refunds of R, sessions of C): the manifest's `exemptions` (13.4).

    `activity` is the per-shop sums (`scoring.activity.shop_activity`).
    """
    account = []
    for e in exemptions:
        matched = {
            log: int(activity[matched_column(source, e)].sum())
            for source, log in LOG_OF_SOURCE.items()
        }
        account.append({**e.as_data(), "rows_matched": matched})
    return account


def exempted_by(window: Window) -> pl.Expr:
    """Per `indicator` row, the names of the exemptions that name it and whose dates meet the
    window (comma-separated; null when none): which rule removed the `excluded` rows."""
    names: dict[str, list[str]] = {}
    for e in window.exemptions:
        if e.paid_to >= window.first_date and e.paid_from <= window.run_date:
            for indicator in e.exclude_from:
                names.setdefault(indicator, []).append(e.name)
    joined = {indicator: ", ".join(n) for indicator, n in names.items()}
    return pl.col("indicator").replace_strict(joined, default=None, return_dtype=pl.String)
