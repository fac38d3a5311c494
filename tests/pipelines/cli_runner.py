"""Run the `expscore` entry point in-process, as a shell would: exit code, stdout, stderr."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli.main import main


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    monkeypatch.setattr(sys, "argv", ["expscore", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def error_lines(stderr: str) -> list[str]:
    """stderr without the log lines (logfmt, `ts=…`, the default off a terminal): the lines an
    error prints, which must be one, and never a traceback."""
    return [line for line in stderr.splitlines() if not line.startswith("ts=")]
