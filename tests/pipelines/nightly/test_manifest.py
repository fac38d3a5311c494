"""The run manifest's provenance (issue 21): which code, which run, when, which rules file byte for
byte, which raw files as they were, and which run published the D-1 it built on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from pipelines.analyst.query import run_query
from pipelines.layout import manifest_path
from pipelines.version import code_version
from tests.builders import DEFAULT_RULES_PATH, tiny_raw
from tests.pipelines.cli_runner import cli

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tiny_raw(tmp_path / "raw")


def run(monkeypatch, capsys, raw: Path, out: Path, day: dt.date, *extra: str):
    """`expscore run` for `day` with JSON logs: (manifest, the run ids of its log lines)."""
    code, _, stderr = cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out), "--date", str(day),
        "--log-format", "json", *extra,
    )  # fmt: skip
    assert code == 0, stderr
    ids = {json.loads(line)["run_id"] for line in stderr.splitlines()}
    return json.loads(manifest_path(out, day).read_text("utf-8")), ids


def _utc(text: str) -> dt.datetime:
    assert ISO_UTC.fullmatch(text), text
    return dt.datetime.fromisoformat(text)


def test_a_run_records_its_code_id_times_and_rules_hash(monkeypatch, capsys, raw, tmp_path):
    before = dt.datetime.now(dt.UTC)
    manifest, log_ids = run(monkeypatch, capsys, raw, tmp_path / "out", D2)
    after = dt.datetime.now(dt.UTC)

    assert RUN_ID.fullmatch(manifest["run_id"])
    assert log_ids == {manifest["run_id"]}  # the manifest leads to the run's log lines
    assert manifest["code_version"] == str(code_version())
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+[0-9a-f]{12}(\.dirty)?)?", manifest["code_version"])
    started, finished = _utc(manifest["started_at"]), _utc(manifest["finished_at"])
    # the file's times are truncated to the millisecond
    assert before - dt.timedelta(milliseconds=1) <= started <= finished <= after
    shipped = hashlib.sha256(DEFAULT_RULES_PATH.read_bytes()).hexdigest()
    assert manifest["rules_sha256"] == shipped
    # a first run: no D-1 was published, nothing built on
    assert manifest["previous_run_id"] is None
    assert manifest["previous"] == {"shop_labels": None, "shop_traffic_weights": None}


def test_each_raw_file_with_its_size_and_modification_time(monkeypatch, capsys, raw, tmp_path):
    manifest, _ = run(monkeypatch, capsys, raw, tmp_path / "out", D2)
    assert manifest["files"]
    for entry in manifest["files"]:
        stat = (raw / entry["path"]).stat()
        assert entry["size"] == stat.st_size
        mtime = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
        assert abs(_utc(entry["mtime"]) - mtime) < dt.timedelta(milliseconds=1)


def test_d_minus_1_is_named_by_the_run_that_published_it(monkeypatch, capsys, raw, tmp_path):
    out = tmp_path / "out"
    first, _ = run(monkeypatch, capsys, raw, out, D1)
    second, _ = run(monkeypatch, capsys, raw, out, D2)
    assert second["run_id"] != first["run_id"]
    assert second["previous_run_id"] == first["run_id"]
    for table in ("shop_labels", "shop_traffic_weights"):
        assert second["previous"][table]["run_id"] == first["run_id"]
        assert second["previous"][table]["dt"] == str(D1)


def test_a_backfill_is_one_run_id_and_each_day_builds_on_it(monkeypatch, capsys, raw, tmp_path):
    out = tmp_path / "out"
    code, _, _ = cli(
        monkeypatch, capsys, "backfill", "--start", str(D1), "--end", str(D3),
        "--raw", str(raw), "--out", str(out),
    )  # fmt: skip
    assert code == 0
    manifests = [json.loads(manifest_path(out, d).read_text("utf-8")) for d in (D1, D2, D3)]
    assert len({m["run_id"] for m in manifests}) == 1
    assert [m["previous_run_id"] for m in manifests] == [None, *[manifests[0]["run_id"]] * 2]
    assert [m["started_at"] for m in manifests] == sorted(m["started_at"] for m in manifests)


def test_two_rules_files_of_one_version_are_told_apart(monkeypatch, capsys, raw, tmp_path):
    changed = tmp_path / "changed.toml"
    # same `version`, another gate: the hash differs, the version does not
    changed.write_text(
        DEFAULT_RULES_PATH.read_text("utf-8").replace(
            "max_quarantine_share = 0.01", "max_quarantine_share = 0.02"
        ),
        "utf-8",
    )
    shipped, _ = run(monkeypatch, capsys, raw, tmp_path / "a", D2)
    custom, _ = run(monkeypatch, capsys, raw, tmp_path / "b", D2, "--rules", str(changed))
    assert custom["rules_version"] == shipped["rules_version"]
    assert custom["rules_sha256"] == hashlib.sha256(changed.read_bytes()).hexdigest()
    assert custom["rules_sha256"] != shipped["rules_sha256"]


def test_the_manifests_view_has_the_provenance_as_columns(monkeypatch, capsys, raw, tmp_path):
    out = tmp_path / "out"
    first, _ = run(monkeypatch, capsys, raw, out, D1)
    second, _ = run(monkeypatch, capsys, raw, out, D2)
    result = run_query(out, "SELECT * EXCLUDE (manifest) FROM manifests ORDER BY dt")
    assert result is not None
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == [
        "dt", "held", "status", "run_id", "code_version", "started_at", "finished_at",
        "rules_version", "rules_sha256", "previous_run_id",
    ]  # fmt: skip
    assert frame.schema["dt"] == pl.Date
    assert isinstance(frame.schema["started_at"], pl.Datetime)
    assert frame.schema["started_at"].time_zone is not None  # an instant, not a wall clock
    assert frame["run_id"].to_list() == [first["run_id"], second["run_id"]]
    assert frame["previous_run_id"].to_list() == [None, first["run_id"]]
    assert frame["code_version"].to_list() == [str(code_version())] * 2
    assert (frame["finished_at"] >= frame["started_at"]).all()
    started = frame["started_at"].dt.convert_time_zone("UTC").to_list()
    assert started[1] == _utc(second["started_at"])
