"""Tests of the synthetic raw-log generator (pipelines/devtools/generate/) against SCORING.md
sections 2
and 13.1 (the orders' optional `ship_to_region`, the optional `appeals` log).

The quarantine rules are re-implemented here, independently of the generator, so that "the rows the
generator meant to break" and "the rows a reader of the spec rejects" are compared, not assumed.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.devtools import generate as gen
from scoring.contract import APPEALS, LOGS, LogSchema

TZ = "Asia/Shanghai"
START = date(2026, 3, 1)
DAYS = 14
SHOPS = 120
ORDERS_PER_DAY = 1200
SEED = 11
# Every log the generator writes, declared from the contract (not taken from the generator)
ALL_LOGS = {**LOGS, APPEALS.name: APPEALS}

REASONS = (
    "null_in_required_column",
    "unknown_enum_value",
    "rating_out_of_range",
    "negative_value",
    "updated_before_created",
    "at_or_after_partition_cutoff",
    "decision_time_mismatch",
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gen.GenerationReport]:
    out = tmp_path_factory.mktemp("raw")
    return out, gen.generate(out, START, DAYS, SHOPS, ORDERS_PER_DAY, SEED, TZ)


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gen.GenerationReport]:
    """The sample with a third of each partition's rows broken: the optional appeals log gets
    no broken row forced into it (a few appeals a day), so at the sample's scale only a large
    share breaks any."""
    out = tmp_path_factory.mktemp("spoiled")
    return out, gen.generate(out, START, DAYS, SHOPS, ORDERS_PER_DAY, SEED, TZ, bad_rows=0.3)


@pytest.fixture(scope="module")
def logs(sample: tuple[Path, gen.GenerationReport]) -> dict[str, pl.DataFrame]:
    out, _ = sample
    return {log: classify(read_log(out, log), schema) for log, schema in ALL_LOGS.items()}


# --------------------------------------------------------------------------------------------------
# An independent reader of the raw layout and of the quarantine rules


def parquet_files(out: Path, log: str) -> list[Path]:
    return sorted((out / log).glob("dt=*/*.parquet"))


def read_log(out: Path, log: str) -> pl.DataFrame:
    """All files of a log, cast to the canonical types (UTC-aware timestamps, Int64), with `dt`;
    an optional column a file leaves out reads as null (13.1)."""
    schema = ALL_LOGS[log]
    frames = []
    for path in parquet_files(out, log):
        frame = pl.read_parquet(path)
        columns = []
        for column in schema.columns:
            expr = pl.col(column.name)
            if column.optional and column.name not in frame.columns:
                expr = pl.lit(None, pl.String).alias(column.name)
            elif column.kind == "timestamp":
                if frame.schema[column.name].time_zone is None:  # type: ignore[union-attr]
                    expr = expr.dt.replace_time_zone("UTC")
                expr = expr.dt.convert_time_zone("UTC")
            elif column.kind == "int":
                expr = expr.cast(pl.Int64)
            columns.append(expr)
        dt = date.fromisoformat(path.parent.name.removeprefix("dt="))
        frames.append(frame.select(columns).with_columns(dt=pl.lit(dt)))
    return pl.concat(frames)


def cutoff_of(dt: pl.Expr) -> pl.Expr:
    """00:00 of dt + 1 in the business time zone, as a UTC instant."""
    local = (dt + pl.duration(days=1)).cast(pl.Datetime("us")).dt.replace_time_zone(TZ)
    return local.dt.convert_time_zone("UTC")


def classify(frame: pl.DataFrame, schema: LogSchema) -> pl.DataFrame:
    """Add `_reason`: the first quarantine rule of SCORING.md 2.5 / 12.2 a row breaks, else null."""
    names = schema.column_names
    checks = dict.fromkeys(REASONS, pl.lit(False))
    required = [pl.col(c.name).is_null() for c in schema.columns if not c.nullable]
    checks["null_in_required_column"] = pl.any_horizontal(required)
    enums = [~pl.col(c.name).is_in(list(c.enum)).fill_null(True) for c in schema.columns if c.enum]
    if enums:
        checks["unknown_enum_value"] = pl.any_horizontal(enums)
    for rating in ("review_rating", "satisfaction"):
        if rating in names:
            checks["rating_out_of_range"] = ~pl.col(rating).is_between(1, 5).fill_null(True)
    negative = [
        (pl.col(c) < 0).fill_null(False)
        for c in ("amount_cents", "first_response_seconds")
        if c in names
    ]
    if negative:
        checks["negative_value"] = pl.any_horizontal(negative)
    created = {"orders": "paid_at", "refunds": "requested_at"}.get(schema.name)
    if created:
        checks["updated_before_created"] = (pl.col("updated_at") < pl.col(created)).fill_null(False)
    version = pl.col(schema.version_column)
    checks["at_or_after_partition_cutoff"] = (version >= cutoff_of(pl.col("dt"))).fill_null(False)
    if schema.name == "refunds":
        mismatch = pl.col("seller_decision").is_null() != pl.col("decided_at").is_null()
        checks["decision_time_mismatch"] = mismatch
    reason: pl.Expr = pl.lit(None, pl.String)
    for name in reversed(REASONS):
        reason = pl.when(checks[name]).then(pl.lit(name)).otherwise(reason)
    return frame.with_columns(_reason=reason)


def good(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("_reason").is_null())


def local(ts: str) -> pl.Expr:
    return pl.col(ts).dt.convert_time_zone(TZ)


# --------------------------------------------------------------------------------------------------
# Determinism


def read_all(out: Path) -> dict[str, pa.Table]:
    return {str(p.relative_to(out)): pq.read_table(p) for p in sorted(out.rglob("*.parquet"))}


def test_same_seed_same_tables_other_seed_other_tables(tmp_path: Path) -> None:
    args = (START, 5, 30, 1000, 5, TZ)
    counts = [gen.generate_raw(tmp_path / name, *args) for name in ("a", "b")]
    assert counts[0] == counts[1]
    assert counts[0]["appeals"] > 0
    first, second = read_all(tmp_path / "a"), read_all(tmp_path / "b")
    assert first.keys() == second.keys()
    assert {name.split("/")[0] for name in first} == set(ALL_LOGS)  # appeals too
    for name, table in first.items():
        assert table.equals(second[name]), name
    gen.generate_raw(tmp_path / "c", START, 5, 30, 1000, 6, TZ)
    other = read_all(tmp_path / "c")
    assert any(not other[n].equals(t) for n, t in first.items() if n in other)
    appeals = [n for n in first if n.startswith("appeals/")]
    assert any(n not in other or not other[n].equals(first[n]) for n in appeals)


def test_chunking_and_run_length_do_not_change_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Draws are keyed by ids: simulating in smaller chunks, or generating fewer days, gives the
    same tables for the days both runs cover (appeals too: keyed by their subjects' ids)."""
    gen.generate_raw(tmp_path / "whole", START, 6, 25, 1000, 5, TZ)
    monkeypatch.setattr(gen, "CHUNK_ORDERS", 170)
    gen.generate_raw(tmp_path / "chunked", START, 4, 25, 1000, 5, TZ)
    whole, chunked = read_all(tmp_path / "whole"), read_all(tmp_path / "chunked")
    days = [f"dt={START + timedelta(days=i)}" for i in range(4)]
    assert chunked.keys() == {n for n in whole if any(day in n for day in days)}
    assert any(n.startswith("appeals/") for n in chunked)
    for name, table in chunked.items():  # the same rows; their order follows the chunks
        assert _rows(table).equals(_rows(whole[name])), name


def _rows(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(pl.all())


# --------------------------------------------------------------------------------------------------
# Layout and schema


def _compatible(declared: str, actual: pa.DataType) -> bool:
    if declared == "int":
        return pa.types.is_integer(actual)
    if declared == "timestamp":
        return pa.types.is_timestamp(actual) and actual.tz in (None, "UTC")  # type: ignore[attr-defined]
    if declared == "bool":
        return pa.types.is_boolean(actual)
    return pa.types.is_string(actual) or pa.types.is_large_string(actual)


def test_layout_schema_and_counts(sample: tuple[Path, gen.GenerationReport]) -> None:
    out, report = sample
    expected_dts = {f"dt={START + timedelta(days=i)}" for i in range(DAYS)}
    styles: set[str] = set()
    assert report.rows.keys() == ALL_LOGS.keys()
    for log, schema in ALL_LOGS.items():
        files = parquet_files(out, log)
        if schema.optional:  # appeals: only days with appeals, none beyond the last
            assert {f.parent.name for f in files} < expected_dts
        else:  # every day, none beyond the last
            assert {f.parent.name for f in files} == expected_dts
        assert {f.name for f in files} <= {"part-0.parquet", "part-1.parquet"}
        rows = 0
        for path in files:
            arrow = pq.read_schema(path)
            assert set(arrow.names) - set(schema.column_names) <= {"ingest_source"}
            for column in schema.columns:
                if column.optional and column.name not in arrow.names:
                    styles.add(f"without {column.name}")
                    continue
                assert column.name in arrow.names, (path, column.name)
                actual = arrow.field(column.name).type
                assert _compatible(column.kind, actual), (path, column.name, actual)
                if column.kind == "timestamp" and actual.tz is None:
                    styles.add("naive timestamps")
                if (
                    column.kind == "int"
                    and actual
                    != {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "TINYINT": pa.int8()}[
                        column.duck_type
                    ]
                ):
                    styles.add("other integer width")
            if path.name == "part-1.parquet":
                styles.add("two files")
            rows += pq.read_metadata(path).num_rows
        assert rows == report.rows[log]
    assert styles == {
        "naive timestamps",
        "other integer width",
        "two files",
        "without ship_to_region",
    }
    assert not list(out.glob(".generate-*")), "scratch folder left behind"


def test_canonical_types_follow_schemas_py() -> None:
    canonical = gen.arrow_schema(LOGS["orders"])
    assert canonical.field("category_id").type == pa.int32()
    assert canonical.field("review_rating").type == pa.int8()
    assert canonical.field("paid_at").type == pa.timestamp("us", tz="UTC")
    cs = gen.arrow_schema(LOGS["cs_sessions"])
    assert cs.field("first_response_seconds").type == pa.int32()
    assert cs.field("satisfaction").type == pa.int8()


# --------------------------------------------------------------------------------------------------
# Partition cutoff and bad rows


def test_quarantine_finds_exactly_the_rows_meant_to_be_bad(
    sample: tuple[Path, gen.GenerationReport], logs: dict[str, pl.DataFrame]
) -> None:
    _, report = sample
    for log, frame in logs.items():
        found = dict(frame["_reason"].drop_nulls().value_counts().iter_rows())
        meant = {reason: n for reason, n in report.bad_rows[log].items() if n}
        assert found == meant, log
        assert sum(meant.values()) <= 0.005 * frame.height + DAYS, log  # a small share


def test_good_rows_lie_before_their_partition_cutoff(logs: dict[str, pl.DataFrame]) -> None:
    for log, frame in logs.items():
        version = pl.col(ALL_LOGS[log].version_column)
        rows = good(frame)
        assert rows.filter(version >= cutoff_of(pl.col("dt"))).height == 0, log
        # ... and some arrive late: in a partition after the local date of their version time
        # (the few appeals of this sample may all be on time: test_appeals_... checks theirs)
        late = rows.filter(local(ALL_LOGS[log].version_column).dt.date() < pl.col("dt"))
        assert late.height > 0 or log == "appeals", log


def test_every_bad_row_kind_appears(
    sample: tuple[Path, gen.GenerationReport],
    logs: dict[str, pl.DataFrame],
    spoiled: tuple[Path, gen.GenerationReport],
) -> None:
    _, report = sample
    _, spoiled_report = spoiled
    for log, kinds in gen.BAD_KINDS.items():
        for kind in kinds:
            if ALL_LOGS[log].optional:
                assert spoiled_report.bad_rows[log][kind] > 0, (log, kind)
                continue
            assert report.bad_rows[log][kind] > 0, (log, kind)
            assert logs[log].filter(pl.col("_reason") == kind).height > 0, (log, kind)
    all_kinds = {kind for kinds in gen.BAD_KINDS.values() for kind in kinds}
    assert all_kinds == set(REASONS)


# --------------------------------------------------------------------------------------------------
# What the data simulates


def test_change_logs_have_versions_duplicates_and_flags(logs: dict[str, pl.DataFrame]) -> None:
    orders = good(logs["orders"])
    versions = orders.group_by("order_id").len()
    assert versions["len"].max() >= 3  # paid, then e.g. review and risk flag
    assert orders.filter(pl.col("updated_at") > pl.col("paid_at")).height > 0
    assert orders.filter(pl.col("review_rating").is_not_null()).height > 0
    assert orders.filter(pl.col("cancelled_at").is_not_null()).height > 0
    assert orders.filter(
        pl.col("promised_ship_at") > pl.col("paid_at") + pl.duration(hours=48)
    ).height
    assert orders.filter(pl.col("promised_delivery_at").is_not_null()).height > 0
    assert orders.filter(pl.col("is_abnormal")).height > 0
    # some orders are flagged only in a later version
    first = orders.sort("updated_at").group_by("order_id").first()
    flagged_later = orders.filter(pl.col("is_abnormal")).join(
        first.filter(~pl.col("is_abnormal")).select("order_id"), on="order_id"
    )
    assert flagged_later.height > 0
    # exact duplicates: equal on key, version time and partition
    assert orders.select("order_id", "updated_at", "dt").is_duplicated().any()
    refunds = good(logs["refunds"])
    assert set(refunds["reason"].unique()) == set(LOGS["refunds"].column("reason").enum or ())
    assert set(refunds["seller_decision"].drop_nulls().unique()) == {
        "agreed",
        "refused",
        "negotiated",
    }
    assert set(refunds["ruling"].drop_nulls().unique()) == {
        "merchant_responsible",
        "buyer_responsible",
        "no_fault",
    }
    assert refunds.filter(pl.col("platform_help") & pl.col("escalated_at").is_not_null()).height
    assert refunds.filter(pl.col("negotiated_retained")).height > 0
    assert refunds.filter(pl.col("completed_at").is_not_null()).height > 0
    assert refunds.filter(pl.col("is_abnormal")).height > 0


def test_tracking_events(logs: dict[str, pl.DataFrame]) -> None:
    events = good(logs["logistics"])
    assert set(events["event_type"].unique()) == set(
        LOGS["logistics"].column("event_type").enum or ()
    )
    assert events["event_id"].is_duplicated().any()  # copies of the same event
    delivered = events.filter(pl.col("event_type") == "delivered")
    assert delivered["door_delivery"].null_count() > 0
    assert delivered["door_delivery"].drop_nulls().n_unique() == 2
    twice = delivered.unique("event_id").group_by("order_id", "event_at").len()
    assert twice["len"].max() >= 2  # two delivered events at one instant, two event ids
    gaps = (
        events.unique("event_id")
        .sort("order_id", "event_at")
        .with_columns(gap=pl.col("event_at").diff().over("order_id"))
    )
    assert gaps.filter(pl.col("gap") == pl.duration(hours=72)).height > 0  # exactly 72 h
    assert gaps.filter(pl.col("gap") > pl.duration(hours=72)).height > 0  # stalls
    orders = good(logs["orders"]).select("order_id").unique()
    picked = events.filter(pl.col("event_type") == "picked_up").select("order_id").unique()
    assert orders.join(picked, on="order_id", how="anti").height > 0  # never picked up


def test_cs_sessions(logs: dict[str, pl.DataFrame]) -> None:
    sessions = good(logs["cs_sessions"])
    assert sessions["session_id"].is_duplicated().any()
    assert sessions["order_id"].null_count() > 0
    response = sessions["first_response_seconds"]
    assert response.null_count() > 0
    assert {179, 180, 181} <= set(response.drop_nulls().to_list())
    assert set(sessions["satisfaction"].drop_nulls().unique()) == {1, 2, 3, 4, 5}
    assert sessions["satisfaction"].null_count() > 0
    assert sessions.filter(pl.col("escalated_to_platform")).height > 0
    started = sessions.select(local("started_at").dt.time().alias("t"))["t"]
    for edge in (time(7, 59, 59), time(8), time(22, 59, 59), time(23)):
        assert edge in set(started.to_list()), edge


def test_records_close_to_local_midnight(logs: dict[str, pl.DataFrame]) -> None:
    paid = good(logs["orders"]).select(local("paid_at").dt.time().alias("t"))["t"]
    assert (paid < time(0, 0, 5)).any()
    assert (paid >= time(23, 59, 55)).any()
    delivered = good(logs["logistics"]).filter(pl.col("event_type") == "delivered")
    assert (delivered.select(local("event_at").dt.time())["event_at"] >= time(23, 59, 57)).any()


def test_shops_differ_in_size_and_quality(logs: dict[str, pl.DataFrame]) -> None:
    """Sizes from tiny to large, and per-shop rates spread across label thresholds (section 8)."""
    orders = good(logs["orders"]).sort("updated_at").group_by("order_id").last()
    size = orders.group_by("shop_id").len()["len"]
    assert size.min() < 30 < size.max() and size.max() > 10 * size.median()
    categories = orders.group_by("shop_id").agg(pl.col("category_id").n_unique())
    assert categories["category_id"].max() >= 2
    assert 1001 in set(orders["category_id"].to_list())
    insurance = orders.group_by("shop_id").agg(n=pl.len(), share=pl.col("return_insurance").mean())
    insurance = insurance.filter(pl.col("n") >= 30)["share"]
    assert insurance.max() >= 0.8 > insurance.min()
    events = good(logs["logistics"]).unique("event_id")
    pickup = (
        events.filter(pl.col("event_type") == "picked_up")
        .group_by("order_id")
        .agg(pl.col("event_at").min())
        .join(orders, on="order_id")
        .group_by("shop_id")
        .agg(n=pl.len(), hours=(pl.col("event_at") - pl.col("paid_at")).dt.total_hours().mean())
        .filter(pl.col("n") >= 30)["hours"]
    )
    assert pickup.min() <= 24 and pickup.max() > 30
    door = (
        events.filter(pl.col("event_type") == "delivered")
        .join(orders.select("order_id", "shop_id"), on="order_id", suffix="_order")
        .group_by("shop_id_order")
        .agg(n=pl.len(), share=pl.col("door_delivery").fill_null(False).mean())
        .filter(pl.col("n") >= 30)["share"]
    )
    assert door.max() >= 0.9 > door.min()
    sessions = good(logs["cs_sessions"]).unique("session_id")
    service = sessions.filter(local("started_at").dt.hour().is_between(8, 22))
    reply = (
        service.filter(pl.col("first_response_seconds").is_not_null())
        .group_by("shop_id")
        .agg(n=pl.len(), mean=pl.col("first_response_seconds").mean())
        .filter(pl.col("n") >= 20)["mean"]
    )
    assert reply.min() <= 30 < reply.max()
    satisfaction = (
        sessions.filter(pl.col("satisfaction").is_not_null())
        .group_by("shop_id")
        .agg(n=pl.len(), share=(pl.col("satisfaction") >= 4).mean())
        .filter(pl.col("n") >= 20)["share"]
    )
    assert satisfaction.max() >= 0.95 > satisfaction.min()


# --------------------------------------------------------------------------------------------------
# ship_to_region (13.1)

# The 31 mainland provinces, autonomous regions and municipalities (ISO 3166-2:CN without "CN-")
MAINLAND = {
    *("AH", "BJ", "CQ", "FJ", "GD", "GS", "GX", "GZ", "HA", "HB", "HE", "HI", "HL", "HN", "JL"),
    *("JS", "JX", "LN", "NM", "NX", "QH", "SC", "SD", "SH", "SN", "SX", "TJ", "XJ", "XZ", "YN"),
    "ZJ",
}


def region_files(out: Path) -> tuple[pl.DataFrame, list[Path]]:
    """The (order_id, ship_to_region) rows of the orders files that carry the column, and the
    orders files that leave it out."""
    carried, without = [], []
    for path in parquet_files(out, "orders"):
        if "ship_to_region" in pq.read_schema(path).names:
            rows = pl.read_parquet(path, columns=["order_id", "ship_to_region"])
            carried.append(rows.with_columns(pl.col("order_id").cast(pl.Int64)))
        else:
            without.append(path)
    return pl.concat(carried), without


def test_ship_to_region_is_a_province_constant_across_an_orders_versions(
    sample: tuple[Path, gen.GenerationReport],
) -> None:
    out, _ = sample
    rows, _ = region_files(out)
    per_order = rows.group_by("order_id").agg(
        regions=pl.col("ship_to_region").n_unique(), region=pl.col("ship_to_region").first()
    )
    assert per_order["regions"].max() == 1  # one value (or null) in every version and copy
    regions = per_order["region"].alias("ship_to_region")
    assert set(regions.drop_nulls().unique()) == MAINLAND
    assert 0.005 <= regions.null_count() / regions.len() <= 0.015  # unknown: ~1%
    share = regions.drop_nulls().value_counts(normalize=True, sort=True, name="share")
    assert share["ship_to_region"].head(3).to_list() == ["GD", "ZJ", "JS"]
    assert 0.10 <= share["share"][0] <= 0.16  # Guangdong
    big = share.filter(pl.col("ship_to_region").is_in(["GD", "ZJ", "JS", "SH", "BJ"]))
    assert set(share["ship_to_region"].head(7)) >= {"GD", "ZJ", "JS", "SH", "BJ"}
    assert 0.35 <= big["share"].sum() <= 0.50
    assert share.filter(pl.col("ship_to_region") == "XZ")["share"][0] < 0.005  # Tibet: few


def test_ship_to_region_is_left_out_of_some_orders_files(
    sample: tuple[Path, gen.GenerationReport], logs: dict[str, pl.DataFrame]
) -> None:
    """Some partitions' files carry the column and others leave it out (a reader sees null there);
    the style is per partition, so the files of one partition agree."""
    out, _ = sample
    rows, without = region_files(out)
    assert without and rows.height
    for path in without:
        for sibling in path.parent.glob("*.parquet"):
            assert "ship_to_region" not in pq.read_schema(sibling).names, sibling
    # the same orders have a region in the files that carry it: the file left it out, not the data
    left_out = pl.concat([pl.read_parquet(p, columns=["order_id"]) for p in without])
    known = rows.filter(pl.col("ship_to_region").is_not_null())
    assert left_out.cast(pl.Int64).join(known, on="order_id").height > 0
    dts = [date.fromisoformat(p.parent.name.removeprefix("dt=")) for p in without]
    unread = logs["orders"].filter(pl.col("dt").is_in(dts))
    assert unread.height and unread["ship_to_region"].null_count() == unread.height
    # about 15% of partitions, decided per log and day; no other log has an optional column
    styles = [gen.file_style(gen.Rng(SEED), "orders", day).omit_optional for day in range(1000)]
    assert 0.11 <= sum(styles) / len(styles) <= 0.19
    orders = gen.arrow_schema(LOGS["orders"], gen.FileStyle(omit_optional=True))
    assert orders.names == [c for c in LOGS["orders"].column_names if c != "ship_to_region"]
    assert gen.arrow_schema(APPEALS, gen.FileStyle(omit_optional=True)).names == [
        "appeal_id",
        "shop_id",
        "subject",
        "subject_id",
        "outcome",
        "decided_at",
    ]


# --------------------------------------------------------------------------------------------------
# Appeals (13.1)

APPEAL_DAYS = 20
SUBJECTS = {  # subject: its log, key, and the time the platform's decision follows
    "order": ("orders", "order_id", "paid_at"),
    "refund": ("refunds", "refund_id", "requested_at"),
    "session": ("cs_sessions", "session_id", "started_at"),
}


@pytest.fixture(scope="module")
def clean_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's twin without bad rows: the same records in the same partitions."""
    out = tmp_path_factory.mktemp("clean")
    gen.generate(out, START, DAYS, SHOPS, ORDERS_PER_DAY, SEED, TZ, bad_rows=0)
    return out


@pytest.fixture(scope="module")
def appeal_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """A larger marketplace for the shares (20 days of 4,000 orders): the appeals and their
    subjects' logs, classified."""
    out = tmp_path_factory.mktemp("appeals")
    gen.generate(out, START, APPEAL_DAYS, 300, 4_000, 13, TZ)
    names = ("appeals", *(log for log, _, _ in SUBJECTS.values()))
    return {log: classify(read_log(out, log), ALL_LOGS[log]) for log in names}


def test_appeals_partitions_only_on_days_with_appeals(
    sample: tuple[Path, gen.GenerationReport],
) -> None:
    """No decision falls within a day of the first subjects: the first day has no partition
    (a missing partition means no appeals that day, 13.1); every partition written has rows."""
    out, report = sample
    folders = sorted((out / "appeals").iterdir())
    assert f"dt={START}" not in {f.name for f in folders}
    assert len(folders) >= DAYS - 3
    for folder in folders:
        files = list(folder.glob("*.parquet"))
        assert files and sum(pq.read_metadata(f).num_rows for f in files) > 0, folder
    assert report.rows["appeals"] == sum(
        pq.read_metadata(f).num_rows for f in parquet_files(out, "appeals")
    )


def test_appeals_reference_existing_subjects_of_the_same_shop(
    appeal_logs: dict[str, pl.DataFrame],
) -> None:
    appeals = good(appeal_logs["appeals"])
    # a subject's first record may arrive up to 6 days late, past the last day: the appeals of
    # the last 6 partitions may name subjects no file holds yet. (A subject whose only row was
    # broken on purpose is in the logs, but has no good row to compare shop and times with.)
    settled = START + timedelta(days=APPEAL_DAYS - 7)
    for subject, (log, key, at) in SUBJECTS.items():
        extra = ["closed_at"] if log == "cs_sessions" else []
        subjects = (
            good(appeal_logs[log])
            .group_by(key)
            .agg(pl.col("shop_id", at, *extra).first())
            .rename({key: "subject_id", "shop_id": "subject_shop_id"})
        )
        mine = appeals.filter(pl.col("subject") == subject).join(
            subjects, on="subject_id", how="left"
        )
        assert mine.height > 20, subject
        ids = appeal_logs[log].select(pl.col(key).alias("subject_id")).unique()
        early = mine.filter(pl.col("dt") <= settled)
        assert early.join(ids, on="subject_id", how="anti").height == 0, subject  # in the logs
        found = mine.filter(pl.col(at).is_not_null())  # with a good row to compare with
        assert found.height >= 0.95 * mine.height, subject
        assert (found["shop_id"] == found["subject_shop_id"]).all(), subject
        delay = found["decided_at"] - found[at]
        assert delay.min() >= timedelta(days=1) and delay.max() <= timedelta(days=10), subject
        if extra:  # a session is decided on after it closed
            assert (found["decided_at"] > found["closed_at"]).all()


def test_appeal_shares_outcomes_copies_and_late_arrivals(
    appeal_logs: dict[str, pl.DataFrame],
) -> None:
    appeals = good(appeal_logs["appeals"])
    distinct = appeals.unique("appeal_id")
    # shares of subjects appealed, among those whose appeals all fall in the generated days
    # (decided at most 10 days after the subject)
    until = cutoff_of(pl.lit(START + timedelta(days=APPEAL_DAYS - 12)))
    plausible = {"order": (0.002, 0.0045), "refund": (0.01, 0.03), "session": (0.003, 0.008)}
    for subject, (log, key, at) in SUBJECTS.items():
        ids = good(appeal_logs[log]).filter(pl.col(at) < until).select(key).unique()
        appealed = distinct.filter(pl.col("subject") == subject).select(
            pl.col("subject_id").alias(key)
        )
        share = ids.join(appealed.unique(), on=key).height / ids.height
        low, high = plausible[subject]
        assert low <= share <= high, (subject, share)
    upheld = (distinct["outcome"] == "upheld").mean()
    assert isinstance(upheld, float) and 0.3 <= upheld <= 0.55
    # a subject appealed twice: first rejected, then upheld; never more than twice
    per_subject = distinct.sort("decided_at").group_by("subject", "subject_id").agg("outcome")
    twice = per_subject.filter(pl.col("outcome").list.len() > 1)
    assert twice.height >= 5
    assert twice["outcome"].to_list() == [["rejected", "upheld"]] * twice.height
    # copies: the same record again in a later partition (counted once by the spec)
    copies = appeals.filter(pl.col("appeal_id").is_duplicated())
    assert copies.height > 0
    assert copies.select(pl.exclude("dt")).unique().height == copies["appeal_id"].n_unique()
    assert (copies.group_by("appeal_id").agg(pl.col("dt").n_unique() == pl.len())["dt"]).all()
    # late arrivals: emitted after the local date of decided_at
    late = appeals.filter(local("decided_at").dt.date() < pl.col("dt"))
    assert 0 < late.height <= 0.1 * appeals.height


def test_bad_appeal_rows_carry_the_intended_defects(
    spoiled: tuple[Path, gen.GenerationReport], clean_sample: Path
) -> None:
    """The sample against its clean twin: every appeal lies before its partition's cutoff except
    the rows broken on purpose, and each of those differs from its clean self in exactly the one
    way its reason names (13.1: a required null, an unknown subject or outcome, decided_at at or
    after the cutoff)."""
    out, report = spoiled
    clean = classify(read_log(clean_sample, "appeals"), APPEALS)
    assert clean["_reason"].null_count() == clean.height
    assert clean.filter(pl.col("decided_at") >= cutoff_of(pl.col("dt"))).height == 0
    dirty = classify(read_log(out, "appeals"), APPEALS)
    key = ["appeal_id", "dt"]
    assert not clean.select(key).is_duplicated().any()
    assert dirty.select(key).sort(key).equals(clean.select(key).sort(key))
    columns = [c for c in APPEALS.column_names if c != "appeal_id"]
    changed = pl.concat_list(
        [pl.when(pl.col(c).ne_missing(pl.col(f"{c}_clean"))).then(pl.lit(c)) for c in columns]
    ).list.drop_nulls()
    rows = dirty.join(clean.drop("_reason"), on=key, suffix="_clean").with_columns(changed=changed)
    broken = rows.filter(pl.col("changed").list.len() > 0)
    assert broken.height == rows["_reason"].drop_nulls().len()  # the others are untouched
    assert (broken["changed"].list.len() == 1).all()
    broken = broken.with_columns(changed=pl.col("changed").list.first())
    counts = dict(broken["_reason"].value_counts().iter_rows())
    assert counts == {reason: n for reason, n in report.bad_rows["appeals"].items() if n}
    assert (
        set(counts)
        == set(gen.BAD_KINDS["appeals"])
        == {
            "null_in_required_column",
            "unknown_enum_value",
            "at_or_after_partition_cutoff",
        }
    )
    for row in broken.iter_rows(named=True):
        column, reason = row["changed"], row["_reason"]
        if reason == "null_in_required_column":
            assert row[column] is None and row[f"{column}_clean"] is not None, row
        elif reason == "unknown_enum_value":
            assert column in ("subject", "outcome"), row
            assert row[column] not in (APPEALS.column(column).enum or ()), row
        else:
            assert reason == "at_or_after_partition_cutoff" and column == "decided_at", row
    beyond = broken.filter(pl.col("_reason") == "at_or_after_partition_cutoff")
    cutoff = cutoff_of(pl.col("dt"))
    assert beyond.filter(pl.col("decided_at") < cutoff).height == 0
    assert beyond.filter(pl.col("decided_at") > cutoff + pl.duration(hours=3)).height == 0


# --------------------------------------------------------------------------------------------------
# Scale


def test_vectorised_enough_for_200k_orders(tmp_path: Path) -> None:
    """A day of 200,000 orders runs in seconds: nothing loops over rows (no timing assertion)."""
    counts = gen.generate_raw(tmp_path, START, 1, 2_000, 200_000, 3, TZ)
    assert counts["orders"] > 200_000 * 0.98  # the paid versions, less a few late or broken
    assert counts["logistics"] > counts["orders"] * 0.3  # pickups and scans of the same day
    assert counts["cs_sessions"] > 0 and counts["refunds"] >= 0


def test_respects_another_time_zone(tmp_path: Path) -> None:
    """Partitions follow the business time zone given (here across a DST change), and a paid
    version lands in the partition of its local payment date unless it arrives late."""
    zone = "America/New_York"
    gen.generate_raw(tmp_path, date(2026, 3, 7), 3, 20, 300, 2, zone)  # DST starts on 03-08
    orders = read_log(tmp_path, "orders")
    paid_versions = orders.filter(pl.col("updated_at") == pl.col("paid_at")).with_columns(
        paid_date=pl.col("paid_at").dt.convert_time_zone(zone).dt.date(),
        cutoff=(pl.col("dt") + pl.duration(days=1))
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone(zone)
        .dt.convert_time_zone("UTC"),
    )
    assert paid_versions.filter(pl.col("paid_date") > pl.col("dt")).height == 0
    on_time = paid_versions.filter(pl.col("paid_date") == pl.col("dt")).height
    assert on_time >= 0.95 * paid_versions.height
    broken = orders.height - paid_versions.height  # at most: the other versions
    assert paid_versions.filter(pl.col("updated_at") >= pl.col("cutoff")).height <= broken


def test_bad_rows_zero_writes_clean_data_that_a_first_run_publishes(tmp_path: Path) -> None:
    """`generate --bad-rows 0`: demo data that the quarantine gate does not hold (issue 21)."""
    from pipelines.nightly.run import load_rules, run_day
    from tests.builders import DEFAULT_RULES_PATH

    report = gen.generate(tmp_path / "raw", START, 3, 20, 200, 4, TZ, bad_rows=0)
    assert sum(n for reasons in report.bad_rows.values() for n in reasons.values()) == 0
    result = run_day(
        tmp_path / "raw", tmp_path / "out", load_rules(DEFAULT_RULES_PATH), START + timedelta(2)
    )
    assert result.manifest["status"] == "published"
    assert sum(sum(r.values()) for r in result.manifest["rejected_by_reason"].values()) == 0
    with pytest.raises(ValueError, match=r"between 0 and 0\.5"):
        gen.generate(tmp_path / "x", START, 1, 5, 10, 4, TZ, bad_rows=0.9)
