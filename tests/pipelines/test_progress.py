"""Progress: structured lines when stderr is not a terminal (the scheduler's log), a Rich bar when
it is; the per-day summaries on stdout are the same either way."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest

from pipelines.errors import InputError
from pipelines.progress import Reporter, format_event, resolve_format
from tests.builders import tiny_raw
from tests.pipelines.analyst_support import cli

ANSI = re.compile(r"\x1b\[")
LOGFMT = re.compile(r'^ts=\S+ level=(info|error) event=\w+( \w+=("[^"]*"|\S+))*$')


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tiny_raw(tmp_path / "raw")


def backfill(monkeypatch, capsys, raw: Path, out: Path, end: str = "2026-03-03"):
    return cli(
        monkeypatch, capsys, "backfill", "--start", "2026-03-01", "--end", end,
        "--raw", str(raw), "--out", str(out),
    )  # fmt: skip


def test_format_follows_the_stream_and_the_environment() -> None:
    assert resolve_format(io.StringIO(), env={}) == "plain"
    assert resolve_format(FakeTTY(), env={}) == "rich"
    assert resolve_format(FakeTTY(), env={"EXPSCORE_LOG_FORMAT": "json"}) == "json"
    assert resolve_format(io.StringIO(), env={"EXPSCORE_LOG_FORMAT": "rich"}) == "rich"
    with pytest.raises(InputError, match="EXPSCORE_LOG_FORMAT='xml'"):
        resolve_format(io.StringIO(), env={"EXPSCORE_LOG_FORMAT": "xml"})


def test_logfmt_quotes_what_needs_quoting() -> None:
    line = format_event("plain", "x", {"a": 1, "b": "two words", "c": None}, ts="T")
    assert line == 'ts=T level=info event=x a=1 b="two words" c=null'
    record = json.loads(format_event("json", "x", {"day": dt.date(2026, 3, 1)}, ts="T"))
    assert record == {"ts": "T", "level": "info", "event": "x", "day": "2026-03-01"}


def test_reporter_task_lines() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream=stream, clock=lambda: "2026-03-04T00:00:00Z")
    with reporter.task("job", 2, size="big") as task:
        task.advance(step_event="part", n=1)
        task.advance(step_event="part", n=2)
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[2] for line in lines] == [
        "event=job_start", "event=job_part", "event=job_part", "event=job_done",
    ]  # fmt: skip
    assert lines[0] == "ts=2026-03-04T00:00:00Z level=info event=job_start total=2 size=big"
    assert lines[2].startswith(
        "ts=2026-03-04T00:00:00Z level=info event=job_part done=2 total=2 n=2"
    )


def test_reporter_logs_a_failure_and_reraises() -> None:
    stream = io.StringIO()

    def fail_after_one_step() -> None:
        with Reporter(stream=stream).task("job", 3) as task:
            task.advance()
            raise ValueError("boom")

    with pytest.raises(ValueError, match=r"^boom$"):
        fail_after_one_step()
    last = stream.getvalue().splitlines()[-1]
    assert " level=error event=job_failed done=1 total=3 error=ValueError " in last


def test_backfill_not_on_a_terminal_logs_plain_lines(monkeypatch, capsys, raw, tmp_path) -> None:
    monkeypatch.delenv("EXPSCORE_LOG_FORMAT", raising=False)
    code, stdout, stderr = backfill(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 0
    # stdout: the per-day summaries, exactly as before
    assert [line.split(":")[0] for line in stdout.splitlines()] == [
        "expscore 2026-03-01", "expscore 2026-03-02", "expscore 2026-03-03",
    ]  # fmt: skip
    # stderr: one parseable line per event, no terminal control codes
    assert not ANSI.search(stderr) and "\r" not in stderr
    lines = stderr.splitlines()
    assert all(LOGFMT.match(line) for line in lines), lines
    events = [re.search(r"event=(\w+)", line).group(1) for line in lines]
    assert events == [
        "backfill_start",
        "backfill_day",
        "backfill_day",
        "backfill_day",
        "backfill_done",
    ]
    assert "start=2026-03-01 end=2026-03-03" in lines[0]
    assert " done=2 total=3 day=2026-03-02 shops=1 items=1 quarantined=0 " in lines[2]


def test_backfill_json_lines(monkeypatch, capsys, raw, tmp_path) -> None:
    monkeypatch.setenv("EXPSCORE_LOG_FORMAT", "json")
    code, _, stderr = backfill(monkeypatch, capsys, raw, tmp_path / "out", end="2026-03-02")
    assert code == 0
    records = [json.loads(line) for line in stderr.splitlines()]
    assert [r["event"] for r in records] == [
        "backfill_start",
        "backfill_day",
        "backfill_day",
        "backfill_done",
    ]
    assert (
        records[1]["day"] == "2026-03-01" and records[1]["done"] == 1 and records[1]["total"] == 2
    )
    assert {"state_s", "score_s", "publish_s"} <= records[1].keys()


def test_backfill_failure_is_logged_before_the_error(monkeypatch, capsys, raw, tmp_path) -> None:
    monkeypatch.delenv("EXPSCORE_LOG_FORMAT", raising=False)
    code, _, stderr = backfill(monkeypatch, capsys, raw, tmp_path / "out", end="2026-02-01")
    assert code == 2
    lines = stderr.splitlines()
    assert "event=backfill_failed done=0 total=0 error=InputError" in lines[-2]
    assert lines[-1] == "expscore: error: backfill: --end 2026-02-01 is before --start 2026-03-01"


def test_rich_bar_on_a_terminal(raw, tmp_path) -> None:
    """Forced to a (fake) terminal, the reporter draws a bar and writes no log lines."""
    from pipelines.progress import backfill_progress
    from pipelines.run import backfill as run_backfill
    from pipelines.run import load_rules

    stream = FakeTTY()
    reporter = Reporter(stream=stream)
    assert reporter.fmt == "rich"
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    with backfill_progress(start, end, reporter) as progress:
        run_backfill(
            raw, tmp_path / "out", load_rules(None), start, end,
            on_day=lambda r: progress.day_done(r, f"summary {r.run_date}"),
        )  # fmt: skip
    drawn = stream.getvalue()
    assert "event=" not in drawn
    assert "2/2" in drawn and "backfill done" in drawn
