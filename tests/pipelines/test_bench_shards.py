"""`expscore bench-shards`: the facts stage per executor and shard count, on a real state."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipelines.bench_shards import bench_shards
from pipelines.errors import InputError
from pipelines.run import StateOptions, load_rules, run_day
from pipelines.state import state_path
from tests.pipelines.cli_runner import cli

SAMPLE_RAW = Path(__file__).resolve().parents[2] / "data_samples" / "raw"
D = dt.date(2026, 10, 10)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench_shards") / "out"
    run_day(SAMPLE_RAW, out, load_rules(None), D, force=True, state=StateOptions(shards=2))
    return out


def test_every_configuration_is_timed_and_gives_the_same_facts(out: Path) -> None:
    state_before = state_path(out).stat().st_mtime_ns
    result = bench_shards(out, None, ["local", "processes"], [1, 3], 2, 2, lambda _: None)
    assert result["run_date"] == D.isoformat()
    assert result["identical_facts"] is True
    assert result["shops"] == 300
    rows = [(c["shards"], c["executor"]) for c in result["configurations"]]
    assert rows == [(1, "local"), (1, "processes"), (3, "local"), (3, "processes")]
    for configuration in result["configurations"]:
        assert len(configuration["runs"]) == 2
        # seconds are the benchmark's to judge; the test checks each stage was timed
        stages = ("bucket", "sum", "gather", "facts", "slowest_shard")
        for stage in stages:
            assert isinstance(configuration[f"{stage}_seconds"], float), stage
            assert configuration[f"{stage}_seconds"] >= 0, stage
        assert configuration["peak_tree_rss_bytes"] > 0
    assert state_path(out).stat().st_mtime_ns == state_before  # read-only
    assert not (out / ".state" / "bench-shards").exists()


def test_the_command_writes_json(out: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    target = tmp_path / "shards.json"
    args = ["--out", str(out), "--executors", "local", "--shards", "2", "--repeats", "1"]
    code, stdout, _ = cli(monkeypatch, capsys, "bench-shards", *args, "--json", str(target))
    assert code == 0
    assert f"JSON: {target}" in stdout
    assert json.loads(target.read_text())["configurations"][0]["shards"] == 2


def test_an_output_folder_without_a_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no window state"):
        bench_shards(tmp_path, None, ["local"], [1], 1, None, lambda _: None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0,2"], "between 1 and 1024"),
        (["--shards", "2,1025"], "between 1 and 1024"),
        (["--executors", "gpu"], "gpu"),
    ],
)
def test_bad_lists_are_usage_errors(out, monkeypatch, capsys, args, message) -> None:
    code, _, err = cli(monkeypatch, capsys, "bench-shards", "--out", str(out), *args)
    assert code == 2
    assert message in err
