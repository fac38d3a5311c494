"""The numbers of `expscore report`: the period's published tables, each scanned once (lazily),
aggregated with Polars into what the charts draw (`ReportData`); `report` draws them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.published import published_dates, resolve_date, scan_days

MOVERS_EACH_WAY = 10


@dataclass(frozen=True)
class ReportData:
    """Everything the report draws, already aggregated."""

    day: dt.date
    dates: list[dt.date]  # published dates in the period, oldest first
    rules_version: str
    shops: pl.DataFrame  # shop_scores of `day`
    band_shares: pl.DataFrame  # dt, band, shops, share (of scored shops)
    indicators: pl.DataFrame  # indicator, main_category_id, smoothed_value (scored shops, `day`)
    movers: pl.DataFrame  # shop_id, main_category_id, score_from, score_to, change
    label_changes: pl.DataFrame  # label, gained, lost (summed over the period)
    labels_held: pl.DataFrame  # label, shops (on `day`)
    quarantine: pl.DataFrame  # dt, reason, rows
    items: int  # item_scores rows on `day`
    exempted: pl.DataFrame  # indicator, main_category_id, rows (removed by exemptions, `day`)
    appeals: pl.DataFrame  # dt, subjects (removed by upheld appeals, all shops)


def period_dates(out: Path, day: dt.date, days: int) -> list[dt.date]:
    """Published dates within the `days` days ending on `day`."""
    if days < 1:
        raise InputError(f"report: --days must be at least 1, got {days}")
    first = day - dt.timedelta(days=days - 1)
    return [d for d in published_dates(out, "shop_scores") if first <= d <= day]


def band_shares(shops: pl.LazyFrame) -> pl.LazyFrame:
    """Per date and band: scored shops and their share of all scored shops that date."""
    scored = shops.filter(pl.col("status") == "scored")
    return (
        scored.group_by("dt", "band")
        .agg(shops=pl.len())
        .with_columns(share=pl.col("shops") / pl.col("shops").sum().over("dt"))
        .sort("dt", "band")
    )


def movers(shops: pl.LazyFrame, first: dt.date, last: dt.date) -> pl.LazyFrame:
    """Shops scored on both dates, with the change of score; the biggest rises and falls."""
    scored = shops.filter(pl.col("status") == "scored")
    before = scored.filter(pl.col("dt") == first).select("shop_id", score_from="score")
    after = scored.filter(pl.col("dt") == last).select(
        "shop_id", "main_category_id", score_to="score"
    )
    both = after.join(before, on="shop_id", how="inner").with_columns(
        change=pl.col("score_to") - pl.col("score_from")
    )
    up = both.filter(pl.col("change") > 0).sort(["change", "shop_id"], descending=[True, False])
    down = both.filter(pl.col("change") < 0).sort(["change", "shop_id"])
    return pl.concat([up.head(MOVERS_EACH_WAY), down.head(MOVERS_EACH_WAY)]).sort("change")


def label_changes(labels: pl.LazyFrame, compared_dates: list[dt.date]) -> pl.LazyFrame:
    """Per label: shops that gained it and shops that lost it, day over day, summed over
    `compared_dates` (each compared with the calendar day before it, which `labels` holds)."""
    held = labels.select("dt", "shop_id", "label")
    previous = held.with_columns(dt=pl.col("dt") + pl.duration(days=1))
    compared = pl.LazyFrame({"dt": compared_dates}, schema={"dt": pl.Date})
    today = held.join(compared, on="dt", how="semi")
    yesterday = previous.join(compared, on="dt", how="semi")
    keys = ["dt", "shop_id", "label"]
    gained = today.join(yesterday, on=keys, how="anti").group_by("label").agg(gained=pl.len())
    lost = yesterday.join(today, on=keys, how="anti").group_by("label").agg(lost=pl.len())
    return (
        gained.join(lost, on="label", how="full", coalesce=True)
        .with_columns(pl.col("gained", "lost").fill_null(0).cast(pl.Int64))
        .sort("label")
    )


def load_report_data(out: Path, day: dt.date | None, days: int) -> ReportData:
    """Read and aggregate the period's tables (each table scanned once, lazily)."""
    day = resolve_date(out, day)
    dates = period_dates(out, day, days)
    shops = scan_days(out, "shop_scores", dates)
    today = shops.filter(pl.col("dt") == day).collect()
    scored_today = today.filter(pl.col("status") == "scored").select("shop_id", "main_category_id")
    indicators = (
        scan_days(out, "shop_indicators", [day])
        .filter(pl.col("assessed"))
        .join(scored_today.lazy(), on="shop_id")
        .sort("indicator", "main_category_id", "shop_id")  # joins do not keep row order
        .select("indicator", "main_category_id", "smoothed_value")
    )
    # labels change day over day: compare each date whose calendar day before was published
    # (the day before the period's first date included); a first run has nothing to compare
    label_published = set(published_dates(out, "shop_labels"))
    compared = [d for d in dates if d - dt.timedelta(days=1) in label_published]
    labels = scan_days(out, "shop_labels", sorted({*dates, dates[0] - dt.timedelta(days=1)}))
    quarantine = (
        scan_days(out, "quarantine", dates)
        .group_by("dt", "reason")
        .agg(rows=pl.len())
        .sort("dt", "reason")
    )
    exempted = (
        scan_days(out, "shop_indicators", [day])
        .filter(pl.col("excluded") > 0)
        .join(today.lazy().select("shop_id", "main_category_id"), on="shop_id")
        .group_by("indicator", "main_category_id")
        .agg(rows=pl.col("excluded").sum())
        .sort("indicator", "main_category_id", nulls_last=True)
    )
    appeals = shops.group_by("dt").agg(subjects=pl.col("appeals_upheld").sum()).sort("dt")
    (
        shares,
        indicator_rows,
        mover_rows,
        changes,
        held,
        quarantined,
        items,
        exempted_rows,
        appeal_rows,
    ) = pl.collect_all(
        [
            band_shares(shops),
            indicators,
            movers(shops, dates[0], day),
            label_changes(labels, compared),
            labels.filter(pl.col("dt") == day).group_by("label").agg(shops=pl.len()).sort("label"),
            quarantine,
            scan_days(out, "item_scores", [day]).select(pl.len()),
            exempted,
            appeals,
        ]
    )
    versions = today["rules_version"].unique().to_list()
    return ReportData(
        day=day,
        dates=dates,
        rules_version=versions[0] if versions else "",
        shops=today,
        band_shares=shares,
        indicators=indicator_rows,
        movers=mover_rows,
        label_changes=changes,
        labels_held=held,
        quarantine=quarantined,
        items=int(items.item()),
        exempted=exempted_rows,
        appeals=appeal_rows,
    )
