"""Shop shards are ranges of hash buckets, and the state keeps each order's bucket (issue 3).

A shard must hold every row of its shops whichever table the row comes from: the stored bucket of
`order_facts`, the SQL that buckets refunds and sessions and the ranges a shard reads must agree.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import duckdb
import pytest

from pipelines.run import StateOptions, load_rules, run_day
from pipelines.shards import MAX_SHARDS, shard_buckets, shard_of
from pipelines.state import READING_DUCKDB_MEMORY, SHOP_BUCKETS, limit_for_reading, state_path
from tests.compare import run_differences

SAMPLE_RAW = Path(__file__).resolve().parents[2] / "data_samples" / "raw"
D = dt.date(2026, 10, 10)
RULES = load_rules(None)
SHARD_COUNTS = [1, 2, 3, 7, 11, 16, 100, 1000, MAX_SHARDS]


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_shards_cut_the_buckets_into_ranges(shards: int) -> None:
    ranges = [shard_buckets(k, shards) for k in range(shards)]
    assert ranges[0][0] == 0 and ranges[-1][1] == SHOP_BUCKETS - 1
    assert all(last + 1 == first for (_, last), (first, _) in itertools.pairwise(ranges))
    sizes = [last - first + 1 for first, last in ranges]
    assert max(sizes) - min(sizes) <= 1  # as even as 1024 buckets allow
    for k, (first, last) in enumerate(ranges):
        assert all(b * shards // SHOP_BUCKETS == k for b in range(first, last + 1))


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_the_sql_shard_of_a_shop_is_the_range_holding_its_bucket(shards: int) -> None:
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT hash(shop_id) % {SHOP_BUCKETS}, {shard_of(shards)} "
        "FROM (SELECT range AS shop_id FROM range(-50, 5000))"
    ).fetchall()
    for bucket, shard in rows:
        first, last = shard_buckets(shard, shards)
        assert first <= bucket <= last


def test_the_state_stores_each_orders_bucket(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_day(SAMPLE_RAW, out, RULES, D - dt.timedelta(days=1), force=True)
    run_day(SAMPLE_RAW, out, RULES, D, force=True)  # a nightly sync moves rows in and out
    con = duckdb.connect(str(state_path(out)), read_only=True)
    orders, wrong = con.sql(
        f"SELECT count(*), count(*) FILTER (WHERE bucket <> hash(shop_id) % {SHOP_BUCKETS}) "
        "FROM order_facts"
    ).fetchall()[0]
    con.close()
    assert orders > 0 and wrong == 0


def test_a_state_bucketed_by_another_hash_is_rebuilt(tmp_path: Path) -> None:
    """A DuckDB whose `hash` differs would put a shop's orders and refunds in different shards."""
    out = tmp_path / "out"
    first = run_day(SAMPLE_RAW, out, RULES, D, force=True)
    con = duckdb.connect(str(state_path(out)))
    con.sql("UPDATE meta SET value = '[0, 1, 2]' WHERE name = 'buckets'")
    con.close()
    again = run_day(SAMPLE_RAW, out, RULES, D, force=True, state=StateOptions())
    assert "buckets" in again.manifest["state"]["rebuilt_because"]
    assert not run_differences(again, first)


def test_the_reading_limit_is_lower_unless_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def limit_after(env: str | None) -> str:
        if env is None:
            monkeypatch.delenv("EXPSCORE_DUCKDB_MEMORY", raising=False)
        else:
            monkeypatch.setenv("EXPSCORE_DUCKDB_MEMORY", env)
        con = duckdb.connect()
        con.sql("SET memory_limit = '2GB'")
        limit_for_reading(con)
        return con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]

    def as_set(value: str) -> str:
        con = duckdb.connect()
        con.sql(f"SET memory_limit = '{value}'")
        return con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]

    assert limit_after(None) == as_set(READING_DUCKDB_MEMORY) != as_set("2GB")
    assert limit_after("3GB") == as_set("3GB")
