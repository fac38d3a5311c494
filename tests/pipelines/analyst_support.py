"""Shared by the tests of explain, query, report and progress: run the CLI, build the sample output.

Each test module reads a copy of the golden run's output (the `sample_output` fixture of
tests/conftest.py: the sample's golden dates, backfilled once a session), so the analyst
commands are tested on the same tables the golden test pins down.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli.main import main
from pipelines.layout import manifest_path
from pipelines.nightly.publish import publish_partition, write_json_atomic
from scoring.contract import PUBLISHED_SCHEMAS


def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str
) -> tuple[int, str, str]:
    """Run `expscore *args` in-process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["expscore", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def publish_day(
    out: Path, day: dt.date, tables: Mapping[str, list[dict]], rules_version: str = "2026.2"
) -> None:
    """Publish hand-made rows of some tables for `day` as `run` does: a partition per table
    (columns a row leaves out are null), then the manifest that makes the date published. For
    outputs the sample does not give: a date where nothing is scored, a table missing."""
    for table, rows in tables.items():
        schema = {**PUBLISHED_SCHEMAS[table]}
        del schema["dt"], schema["rules_version"]
        frame = pl.DataFrame(rows, schema=schema).with_columns(rules_version=pl.lit(rules_version))
        publish_partition(out, table, day, frame)
    write_json_atomic(manifest_path(out, day), {"run_date": day.isoformat(), "status": "ok"})
