"""Who runs the shard tasks cannot change a table (issue 6).

A small generated marketplace is scored with each executor (in this process, a process pool,
Ray) and with several shard counts; every table must be identical, bit for bit, to the
in-process run with 4 shards.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipelines.errors import InputError
from pipelines.executors import ExecutorOptions, open_executor
from pipelines.executors.exchange import Exchange
from pipelines.layout import EXCHANGE_DIR, STATE_DIR, partition_name
from pipelines.nightly.run import RunResult, StateOptions, backfill, load_rules, run_day
from pipelines.state.store import StateStore
from scoring.contract import TABLE_SCHEMAS
from tests.builders import small_raw
from tests.compare import run_differences
from tests.pipelines.cli_runner import cli

D = dt.date(2026, 2, 28)
RULES = load_rules(None)


def scored(out: Path, shards: int, executor: ExecutorOptions) -> RunResult:
    options = StateOptions(shards=shards, executor=executor)
    return run_day(small_raw(), out, RULES, D, publish=False, state=options)


def identical(a: RunResult, b: RunResult) -> list[str]:
    """Tables that are not equal bit for bit (floats included: same functions, same rows)."""
    problems = [t for t in TABLE_SCHEMAS if not a.tables[t].equals(b.tables[t])]
    return problems + run_differences(a, b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return scored(tmp_path_factory.mktemp("local"), 4, ExecutorOptions("local"))


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local Ray of two CPUs for this module; the executor reuses it rather than starting one."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'expscore[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_process_pool_gives_identical_tables(reference: RunResult, tmp_path: Path) -> None:
    result = scored(tmp_path, 4, ExecutorOptions("processes", workers=2))
    assert result.manifest["execution"]["executor"] == "processes"
    assert not identical(result, reference)


def test_ray_gives_identical_tables(reference: RunResult, ray_session: None, tmp_path) -> None:
    result = scored(tmp_path, 4, ExecutorOptions("ray"))
    assert result.manifest["execution"]["executor"] == "ray"
    assert result.manifest["execution"]["shards"] == 4
    assert not identical(result, reference)


@pytest.mark.parametrize("shards", [1, 16])
def test_the_shard_count_gives_identical_tables(reference: RunResult, tmp_path, shards) -> None:
    result = scored(tmp_path, shards, ExecutorOptions("processes", workers=2))
    assert result.manifest["execution"]["shards"] == shards
    assert not identical(result, reference)


def test_an_exchange_given_as_a_uri(reference: RunResult, tmp_path: Path) -> None:
    """A `file://` URI goes through pyarrow's URI resolution, as `s3://` would; nothing is left."""
    exchange = tmp_path / "exchange"
    executor = ExecutorOptions("processes", workers=2, exchange=exchange.as_uri())
    result = scored(tmp_path / "out", 3, executor)
    assert not identical(result, reference)
    assert list(exchange.iterdir()) == []


def test_the_manifest_says_what_each_shard_did(reference: RunResult) -> None:
    execution = reference.manifest["execution"]
    assert execution["executor"] == "local"
    assert execution["shards"] == 4
    orders_v = reference.tables["shop_scores"]["valid_orders"].sum()
    assert orders_v / 4 <= execution["orders_per_shard_max"] <= orders_v
    assert execution["shard_seconds_max"] <= execution["shard_seconds_total"]


def test_a_published_run_leaves_no_exchange_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    leftover = out / STATE_DIR / EXCHANGE_DIR / "run-killed"
    leftover.mkdir(parents=True)
    (leftover / "part-00000.parquet").write_bytes(b"left by a killed run")
    options = StateOptions(shards=2, executor=ExecutorOptions("processes", workers=2))
    run_day(small_raw(), out, RULES, D, force=True, state=options)
    assert list((out / STATE_DIR / EXCHANGE_DIR).iterdir()) == []


def _fails_on_two(n: int) -> int:
    if n == 2:
        raise ValueError(f"task {n} failed")
    return n * 10


@pytest.mark.parametrize("kind", ["local", "processes"])
def test_a_failing_task_fails_the_map(kind: str) -> None:
    with open_executor(ExecutorOptions(kind), tasks=3) as executor:
        assert executor.map(_fails_on_two, [0, 1]) == [0, 10]
        with pytest.raises(ValueError, match="task 2 failed"):
            executor.map(_fails_on_two, [0, 1, 2])


def test_a_failing_shard_keeps_the_published_tables(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    run_day(small_raw(), out, RULES, D, force=True, state=StateOptions(shards=2))
    before = {p: p.read_bytes() for p in out.rglob("*.parquet") if STATE_DIR not in p.parts}
    store = StateStore(str(out / STATE_DIR))
    version = store.latest()[0].version

    def broken(task):
        raise OSError(f"shard {task.shard}: exchange unreachable")

    monkeypatch.setattr("pipelines.state.shard_night", broken)
    with pytest.raises(OSError, match="exchange unreachable"):
        run_day(small_raw(), out, RULES, D, force=True, state=StateOptions(shards=2))
    after = {p: p.read_bytes() for p in out.rglob("*.parquet") if STATE_DIR not in p.parts}
    assert after == before
    assert store.latest()[0].version == version  # the state did not move either
    assert list((out / STATE_DIR / EXCHANGE_DIR).iterdir()) == []


def test_exchange_round_trip_and_removal(tmp_path: Path) -> None:
    exchange = Exchange.for_run(str(tmp_path))
    table = pl.DataFrame({"shop_id": [3, 1], "n": [7, 8]}).to_arrow()
    exchange.write_parquet(table, "activity", "part-00000.parquet")
    with exchange.arrow_writer(table.schema, "orders", "part-00000.arrow") as writer:
        writer.write_table(table)
        writer.write_table(table)
    assert exchange.read_parquet("activity", "part-00000.parquet").equals(table)
    assert exchange.read_arrow("orders", "part-00000.arrow").equals(pa.concat_tables([table] * 2))
    exchange.remove()
    assert list(tmp_path.iterdir()) == []
    exchange.remove()  # nothing there: no error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "threads"], "--executor threads: must be one of local, processes, ray"),
        (["--ray-address", "ray://head:10001"], "--ray-address is only for --executor ray"),
        (["--workers", "2"], "--workers is only for --executor processes"),
    ],
)
def test_executor_options_are_checked(tmp_path, monkeypatch, capsys, args, message) -> None:
    code, _, err = cli(
        monkeypatch, capsys, "run", "--raw", str(small_raw()), "--out", str(tmp_path), *args
    )
    assert code == 2
    assert message in err
    assert not (tmp_path / "shop_scores").exists()


@pytest.fixture
def s3_exchange(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """An S3 bucket on a local moto server: the exchange URI and a pyarrow filesystem on it."""
    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto is not installed (it comes with the dev extra)")
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)  # inherited by the spawned workers
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    fs, _ = pafs.FileSystem.from_uri(f"s3://exchange?{query}&allow_bucket_creation=true")
    fs.create_dir("exchange")
    yield f"s3://exchange/expscore/tmp?{query}", fs
    server.stop()


def test_an_exchange_on_object_storage(reference: RunResult, tmp_path: Path, s3_exchange) -> None:
    """Shard files through S3 (a local moto server), as on a cluster; nothing is left there."""
    uri, fs = s3_exchange
    executor = ExecutorOptions("processes", workers=2, exchange=uri)
    result = scored(tmp_path, 4, executor)
    assert not identical(result, reference)
    left = fs.get_file_info(pafs.FileSelector("exchange", recursive=True))
    assert [info.path for info in left if info.type == pafs.FileType.File] == []
    assert "exchange/expscore/tmp" in [info.path for info in left]  # the run's folder was there


def last_days(raw: Path, days: int) -> Path:
    """The partitions of the last `days` dates up to D of the small marketplace: a state of
    few files, since every request to the local S3 server costs milliseconds."""
    for log_dir in small_raw().iterdir():
        for part in log_dir.iterdir():
            if part.name >= partition_name(D - dt.timedelta(days=days - 1)):
                shutil.copytree(part, raw / log_dir.name / part.name)
    return raw


def test_a_state_on_object_storage(tmp_path: Path, s3_exchange) -> None:
    """The whole state on S3, read and written by the workers: two nights, the same tables as
    a from-scratch run."""
    uri, fs = s3_exchange
    state = uri.replace("/tmp?", "/state?")
    options = StateOptions(shards=2, executor=ExecutorOptions("processes"), location=state)
    out, raw = tmp_path / "out", last_days(tmp_path / "raw", 5)
    run_day(raw, out, RULES, D - dt.timedelta(days=1), force=True, state=options)
    night = run_day(raw, out, RULES, D, force=True, state=options)
    assert night.manifest["state"]["rebuilt_because"] is None
    assert night.manifest["state"]["partitions_loaded"]["orders"] == [D.isoformat()]
    scratch = run_day(raw, out, RULES, D, publish=False)
    assert not identical(night, scratch)
    stored = fs.get_file_info(pafs.FileSelector("exchange/expscore/state", recursive=True))
    manifests = [i.base_name for i in stored if "/manifests/" in i.path]
    assert manifests == ["00000002.json"]
    assert not (out / STATE_DIR).exists()


class FakeRay:
    """Ray's calls the executor makes, run in this process: counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = False

    def is_initialized(self) -> bool:
        return self.connected

    def init(self, **_: Any) -> None:
        self.connections += 1
        self.connected = True

    def shutdown(self) -> None:
        self.connected = False

    def remote(self, fn: Any) -> Any:
        return SimpleNamespace(remote=fn)

    def get(self, results: list) -> list:
        return results


def test_a_backfill_connects_to_ray_once(tmp_path: Path, monkeypatch) -> None:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    options = StateOptions(shards=2, executor=ExecutorOptions("ray"))
    manifests = backfill(
        small_raw(), tmp_path, RULES, D - dt.timedelta(days=1), D, force=True, state=options
    )
    assert [m["execution"]["executor"] for m in manifests] == ["ray", "ray"]
    assert fake.connections == 1
    assert not fake.connected


def test_ray_not_installed_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(InputError, match=r"pip install 'expscore\[ray\]'"):
        scored(tmp_path, 2, ExecutorOptions("ray"))
