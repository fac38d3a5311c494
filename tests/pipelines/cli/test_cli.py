"""The command line: exit codes, one-line errors, a useful summary."""

from __future__ import annotations

import datetime as dt
import gc
import json
import weakref
from pathlib import Path

import duckdb
import pytest

from pipelines.nightly.run import RunResult, backfill, load_rules
from tests.builders import DEFAULT_RULES_PATH, tiny_raw
from tests.pipelines.cli_runner import cli, error_lines


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tiny_raw(tmp_path / "raw")


def test_run_publishes_tables_and_manifest(monkeypatch, capsys, raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))
    assert code == 0
    assert "expscore 2026-03-02: 1 shops (0 scored), 1 items" in stdout
    for table in (
        "shop_scores",
        "shop_indicators",
        "item_scores",
        "shop_labels",
        "shop_traffic_weights",
        "item_traffic_weights",
        "quarantine",
    ):
        assert (out / table / "dt=2026-03-02" / "part-0.parquet").is_file()
    manifest = json.loads((out / "manifests" / "dt=2026-03-02.json").read_text())
    assert manifest["inputs"]["orders"]["rows_read"] == 3
    assert manifest["outputs"]["shop_indicators"]["rows"] == 12
    assert manifest["rules_version"] == "2026.2"


def test_missing_column_exits_2_naming_file_and_column(
    monkeypatch, capsys, raw: Path, tmp_path: Path
) -> None:
    import polars as pl

    path = raw / "orders" / "dt=2026-03-01" / "part-0.parquet"
    pl.read_parquet(path).drop("shop_id").write_parquet(path)
    out = tmp_path / "out"
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))
    assert code == 2
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    assert "part-0.parquet: missing required column 'shop_id'" in error_lines(err)[0]
    assert not (out / "shop_scores").exists()  # nothing published for that date


def test_bad_rules_file_exits_2_naming_the_key(
    monkeypatch, capsys, raw: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES_PATH.read_text().replace("product = 0.35", "product = 0.45"))
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--rules", str(bad))
    assert code == 2
    assert "dimension_weights: weights must sum to 1" in err


def test_bad_date_is_a_usage_error(monkeypatch, capsys, raw: Path) -> None:
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--date", "yesterday")
    assert code == 2
    assert "--date: 'yesterday' is not a date" in err


def test_unknown_option_is_a_usage_error(monkeypatch, capsys) -> None:
    code, _, _ = cli(monkeypatch, capsys, "run", "--frobnicate")
    assert code == 2


def test_no_raw_data_exits_2(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(tmp_path / "nothing"))
    assert code == 2
    assert "no raw partitions found" in err


def test_backfill_runs_dates_in_order(monkeypatch, capsys, raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli(
        monkeypatch,
        capsys,
        "backfill",
        "--start",
        "2026-03-01",
        "--end",
        "2026-03-03",
        "--raw",
        str(raw),
        "--out",
        str(out),
    )
    assert code == 0
    assert [line.split(":")[0] for line in stdout.splitlines()] == [
        "expscore 2026-03-01",
        "expscore 2026-03-02",
        "expscore 2026-03-03",
    ]
    assert sorted(p.name for p in (out / "shop_scores").iterdir()) == [
        "dt=2026-03-01",
        "dt=2026-03-02",
        "dt=2026-03-03",
    ]


def test_a_backfill_keeps_no_day_s_tables_in_memory(raw: Path, tmp_path: Path) -> None:
    """Each day's tables are published and let go: a backfill's memory must not grow with its
    length (at M, holding them cost about 0.5 GB a day). It returns the days' manifests."""
    out = tmp_path / "out"
    seen: list[weakref.ref] = []

    def on_day(result: RunResult) -> None:
        seen.extend(weakref.ref(table) for table in result.tables.values())

    manifests = backfill(
        raw, out, load_rules(None), dt.date(2026, 3, 1), dt.date(2026, 3, 3), on_day=on_day
    )
    gc.collect()
    assert len(seen) == 3 * 6
    assert [ref() for ref in seen] == [None] * len(seen)
    assert manifests == [
        json.loads((out / "manifests" / f"dt=2026-03-0{d}.json").read_text()) for d in (1, 2, 3)
    ]


def test_help_lists_commands(monkeypatch, capsys) -> None:
    code, stdout, _ = cli(monkeypatch, capsys, "--help")
    assert code == 0
    for command in ("run", "backfill", "generate"):
        assert command in stdout


# --------------------------------------------------------------------------------------------
# the usual manners (issue 21)


def test_version_names_the_package_and_the_commit(monkeypatch, capsys) -> None:
    import importlib.metadata

    code, stdout, _ = cli(monkeypatch, capsys, "--version")
    assert code == 0
    assert stdout.startswith(f"expscore {importlib.metadata.version('expscore')}")
    assert "(commit " in stdout  # the tests run from a git checkout


def test_python_m_pipelines_is_the_expscore_command(monkeypatch, capsys) -> None:
    """`python -m pipelines ...` (how the crash tests and the benchmark start runs) is
    `expscore ...`: the same commands, output and exit codes."""
    import runpy
    import sys

    from pipelines.cli.main import version_text

    monkeypatch.setattr(sys, "argv", ["pipelines", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("pipelines", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == version_text() + "\n"
    monkeypatch.setattr(sys, "argv", ["pipelines", "run", "--date", "soon"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("pipelines", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 2
    assert error_lines(capsys.readouterr().err) == [
        "expscore: error: --date: 'soon' is not a date (YYYY-MM-DD)"
    ]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_short_and_long_help(monkeypatch, capsys, flag: str) -> None:
    code, stdout, _ = cli(monkeypatch, capsys, "run", flag)
    assert code == 0 and "--raw" in stdout and "--out" in stdout


def test_an_out_that_is_a_file_is_a_usage_error(monkeypatch, capsys, raw, tmp_path) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(target))
    assert code == 2
    assert error_lines(err) == [f"expscore: error: --out {target}: not a folder (File exists)"]


def test_an_unwritable_out_is_a_usage_error(monkeypatch, capsys, raw, tmp_path) -> None:
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: make the folder a file's child
        locked = tmp_path / "a-file" / "out"
        (tmp_path / "a-file").write_text("x")
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(locked))
    lines = error_lines(err)
    assert (
        code == 2 and len(lines) == 1 and lines[0].startswith(f"expscore: error: --out {locked}: ")
    )


def test_ctrl_c_exits_130_on_one_line(monkeypatch, capsys, raw, tmp_path) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipelines.cli.main.run_day", interrupted)
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(tmp_path))
    assert code == 130 and error_lines(err) == ["expscore: interrupted"]
    assert "exit_code=130" in err.splitlines()[-2]  # the run's last log line says so too


def test_a_quote_in_the_out_path_works_end_to_end(monkeypatch, capsys, raw, tmp_path) -> None:
    out = tmp_path / "it's out"  # once broke a DuckDB SET built from the path (issue 23)
    assert cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))[0] == 0
    code, stdout, _ = cli(monkeypatch, capsys, "query", "--out", str(out), "SELECT 1 AS one")
    assert code == 0 and "one" in stdout


def test_a_run_without_a_published_day_before_says_so(monkeypatch, capsys, raw, tmp_path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))
    assert code == 0
    assert "D-1 (2026-03-01) was not published: no label held, weights not clamped" in stdout
    code, stdout, _ = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out),
                          "--date", "2026-03-03")  # fmt: skip
    assert code == 0 and "was not published" not in stdout


@pytest.mark.parametrize(
    "error", [RuntimeError("Query interrupted"), duckdb.InterruptException("INTERRUPT Error")]
)
def test_ctrl_c_inside_a_duckdb_query_exits_130(monkeypatch, capsys, raw, tmp_path, error) -> None:
    """DuckDB turns SIGINT into its own error; it is still an interruption, not a crash."""

    def interrupted(*args, **kwargs):
        raise error

    monkeypatch.setattr("pipelines.cli.main.run_day", interrupted)
    code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(tmp_path))
    assert code == 130 and error_lines(err) == ["expscore: interrupted"]
    assert "exit_code=130" in err.splitlines()[-2]  # the run's last log line says so too
