"""Progress and logs: structured lines when stderr is not a terminal (the scheduler's log), a Rich
bar when it is; the per-day summaries on stdout are the same either way. Every command goes
through one logging setup (pipelines/logs.py): each line carries the run id and the command."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest

from pipelines import logs
from pipelines.errors import InputError
from pipelines.logs import format_event, resolve_format
from pipelines.progress import Reporter
from tests.builders import tiny_raw
from tests.pipelines.analyst_support import cli
from tests.pipelines.cli_runner import error_lines

ANSI = re.compile(r"\x1b\[")
LOGFMT = re.compile(
    r'^ts=\S+ level=(info|warning|error) event=\w+ run_id=\S+ command=\S+( \w+=("[^"]*"|\S+))*$'
)


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


@pytest.fixture
def log_stream():
    """A logging setup writing text lines to a string, with a fixed clock."""
    stream = io.StringIO()
    logs.setup("job", "text", stream=stream, clock=lambda: "2026-03-04T00:00:00Z")
    yield stream
    logs.teardown()


def test_format_follows_the_option_the_environment_and_the_stream() -> None:
    assert resolve_format(io.StringIO(), env={}) == "text"
    assert resolve_format(FakeTTY(), env={}) == "rich"
    assert resolve_format(FakeTTY(), env={"EXPSCORE_LOG_FORMAT": "json"}) == "json"
    assert resolve_format(io.StringIO(), env={"EXPSCORE_LOG_FORMAT": "rich"}) == "rich"
    assert resolve_format(io.StringIO(), env={"EXPSCORE_LOG_FORMAT": "plain"}) == "text"
    assert resolve_format(FakeTTY(), env={"EXPSCORE_LOG_FORMAT": "json"}, option="text") == "text"
    with pytest.raises(InputError, match="EXPSCORE_LOG_FORMAT='xml'"):
        resolve_format(io.StringIO(), env={"EXPSCORE_LOG_FORMAT": "xml"})


def test_logfmt_quotes_what_needs_quoting() -> None:
    line = format_event("text", "x", {"a": 1, "b": "two words", "c": None}, ts="T")
    assert line == 'ts=T level=info event=x a=1 b="two words" c=null'
    record = json.loads(format_event("json", "x", {"day": dt.date(2026, 3, 1)}, ts="T"))
    assert record == {"ts": "T", "level": "info", "event": "x", "day": "2026-03-01"}


def test_reporter_task_lines(log_stream) -> None:
    run_id = logs.bound().run_id
    reporter = Reporter()
    with reporter.task("job", 2, size="big") as task:
        task.advance(step_event="part", n=1)
        task.advance(step_event="part", n=2)
        task.result(parts=2)
    lines = log_stream.getvalue().splitlines()
    assert [line.split(" ")[2] for line in lines] == [
        "event=job_start", "event=job_part", "event=job_part", "event=job_done",
    ]  # fmt: skip
    assert lines[0] == (
        f"ts=2026-03-04T00:00:00Z level=info event=job_start run_id={run_id} command=job "
        "total=2 size=big"
    )
    assert lines[2].startswith(
        f"ts=2026-03-04T00:00:00Z level=info event=job_part run_id={run_id} command=job "
        "done=2 total=2 n=2"
    )
    assert lines[3].endswith(" parts=2")


def test_plain_logging_records_come_out_in_the_same_format(log_stream) -> None:
    """A module's `logging` call (the window state's rebuild warning) is a line like the events."""
    import logging

    logging.getLogger("pipelines.state").warning("window state rebuilt from raw: %s", "why")
    line = log_stream.getvalue().splitlines()[-1]
    assert LOGFMT.match(line)
    assert " level=warning event=log " in line and 'message="window state rebuilt' in line


def test_reporter_logs_a_failure_and_reraises(log_stream) -> None:
    def fail_after_one_step() -> None:
        with Reporter().task("job", 3) as task:
            task.advance()
            raise InputError("bad\ninput")

    with pytest.raises(InputError, match=r"^bad\ninput$"):
        fail_after_one_step()
    last = log_stream.getvalue().splitlines()[-1]
    assert " level=error event=job_failed " in last
    assert ' done=1 total=3 error=InputError exit_code=2 message="bad input" ' in last


def test_backfill_not_on_a_terminal_logs_text_lines(monkeypatch, capsys, raw, tmp_path) -> None:
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
    assert " done=2 total=3 day=2026-03-02 status=published shops=1 items=1 " in lines[2]


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
    assert "event=backfill_failed " in lines[-2]
    assert " done=0 total=0 error=InputError exit_code=2 " in lines[-2]
    assert lines[-1] == "expscore: error: backfill: --end 2026-02-01 is before --start 2026-03-01"


def test_rich_bar_on_a_terminal(raw, tmp_path) -> None:
    """Forced to a (fake) terminal, the reporter draws a bar and writes no log lines."""
    from pipelines.nightly.run import backfill as run_backfill
    from pipelines.nightly.run import load_rules
    from pipelines.progress import backfill_progress

    stream = FakeTTY()
    reporter = Reporter(stream=stream)
    assert reporter.fmt == "rich"  # no setup: the stream is a terminal
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    with backfill_progress(start, end, reporter) as progress:
        run_backfill(
            raw, tmp_path / "out", load_rules(None), start, end,
            on_day=lambda r: progress.day_done(r, f"summary {r.run_date}"),
        )  # fmt: skip
    drawn = stream.getvalue()
    assert "event=" not in drawn
    assert "2/2" in drawn and "backfill done" in drawn


def run(monkeypatch, capsys, raw: Path, out: Path, *extra: str):
    return cli(
        monkeypatch, capsys, "run", "--date", "2026-03-03", "--raw", str(raw), "--out", str(out),
        *extra,
    )  # fmt: skip


RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def test_run_json_lines_each_parse_and_carry_the_run_id(monkeypatch, capsys, raw, tmp_path):
    """`run`, the command a scheduler calls, logs like backfill: one JSON object a line, each
    with the run's id and the command, a line per stage with its seconds and counts."""
    monkeypatch.delenv("EXPSCORE_LOG_FORMAT", raising=False)
    code, stdout, stderr = run(
        monkeypatch, capsys, raw, tmp_path / "out", "--rebuild", "--log-format", "json"
    )
    assert code == 0 and stdout.startswith("expscore 2026-03-03: ")
    records = [json.loads(line) for line in stderr.splitlines()]
    assert records and all(RUN_ID.fullmatch(r["run_id"]) for r in records)
    assert len({r["run_id"] for r in records}) == 1
    assert {r["command"] for r in records} == {"run"}
    events = [r["event"] for r in records if r["event"] != "log"]
    assert events == ["run_start", "run_stage", "run_stage", "run_stage", "run_done"]
    stages = {r["stage"]: r for r in records if r["event"] == "run_stage"}
    assert list(stages) == ["state", "score", "publish"]
    assert all(isinstance(r["seconds"], float) for r in stages.values())
    assert stages["state"]["files_read"] > 0 and stages["state"]["rebuilt_because"] == "--rebuild"
    assert stages["score"]["shops"] == 1 and stages["publish"]["status"] == "published"
    done = records[-1]
    assert done["event"] == "run_done" and done["day"] == "2026-03-03" and done["shops"] == 1
    assert {"state_s", "score_s", "publish_s", "seconds"} <= done.keys()
    # a plain `logging` record of the state module, in the same format and run
    rebuilt = [r for r in records if r["event"] == "log"]
    assert rebuilt and rebuilt[0]["logger"] == "pipelines.state"
    assert "rebuilt from raw" in rebuilt[0]["message"]


def test_run_json_from_the_environment_the_error_too(monkeypatch, capsys, raw, tmp_path):
    monkeypatch.setenv("EXPSCORE_LOG_FORMAT", "json")
    code, stdout, stderr = run(monkeypatch, capsys, raw, tmp_path / "out", "--date", "2025-01-01")
    assert code == 2 and stdout == ""
    records = [json.loads(line) for line in stderr.splitlines()]  # every line, the error too
    assert [r["event"] for r in records] == ["run_start", "run_failed", "error"]
    assert len({r["run_id"] for r in records}) == 1
    failed, error = records[1:]
    assert failed["level"] == "error" and failed["exit_code"] == 2
    assert failed["error"] == "NoInputError" and "no partition of any log" in failed["message"]
    assert error["kind"] == "error" and error["exit_code"] == 2
    assert error["message"] == failed["message"]


def test_run_text_lines_by_default_off_a_terminal(monkeypatch, capsys, raw, tmp_path):
    monkeypatch.delenv("EXPSCORE_LOG_FORMAT", raising=False)
    code, _, stderr = run(monkeypatch, capsys, raw, tmp_path / "out")
    assert code == 0
    lines = stderr.splitlines()
    assert lines and all(LOGFMT.match(line) for line in lines), lines
    assert not ANSI.search(stderr)
    assert re.search(r"event=run_done run_id=\S+ command=run ", lines[-1])


def test_backfill_skips_dates_without_input_and_goes_on(monkeypatch, capsys, raw, tmp_path):
    """2026-02-27 and 02-28 reach back before the logs begin (their windows hold no partition):
    each is reported and skipped, and the dates with input are published (issue 21)."""
    monkeypatch.setenv("EXPSCORE_LOG_FORMAT", "json")
    out = tmp_path / "out"
    code, stdout, stderr = cli(
        monkeypatch, capsys, "backfill", "--start", "2026-02-27", "--end", "2026-03-02",
        "--raw", str(raw), "--out", str(out),
    )  # fmt: skip
    assert code == 0
    assert [line.split(":")[0:2] for line in stdout.splitlines()] == [
        ["expscore 2026-02-27", " skipped, no partition of any log in its window"],
        ["expscore 2026-02-28", " skipped, no partition of any log in its window"],
        ["expscore 2026-03-01", " 1 shops (0 scored), 1 items"],
        ["expscore 2026-03-02", " 1 shops (0 scored), 1 items"],
    ]
    records = [json.loads(line) for line in stderr.splitlines()]
    skipped = [r for r in records if r["event"] == "backfill_skipped"]
    assert [r["day"] for r in skipped] == ["2026-02-27", "2026-02-28"]
    assert all("no partition of any log in the window" in r["reason"] for r in skipped)
    done = records[-1]
    assert done["event"] == "backfill_done" and (done["published"], done["skipped"]) == (2, 2)
    assert sorted(p.name for p in (out / "shop_scores").iterdir()) == [
        "dt=2026-03-01", "dt=2026-03-02",
    ]  # fmt: skip
    assert not (out / "manifests" / "dt=2026-02-28.json").exists()


def test_backfill_with_no_input_on_any_date_is_an_input_error(monkeypatch, capsys, raw, tmp_path):
    monkeypatch.delenv("EXPSCORE_LOG_FORMAT", raising=False)
    out = tmp_path / "out"
    code, stdout, stderr = cli(
        monkeypatch, capsys, "backfill", "--start", "2025-01-01", "--end", "2025-01-03",
        "--raw", str(raw), "--out", str(out),
    )  # fmt: skip
    assert code == 2
    assert len(stdout.splitlines()) == 3 and all("skipped" in line for line in stdout.splitlines())
    assert error_lines(stderr) == [
        f"expscore: error: {raw}: no partition of any log in the window of any date "
        "2025-01-01..2025-01-03 (3 dates skipped); nothing is published"
    ]
    assert not (out / "shop_scores").exists()
