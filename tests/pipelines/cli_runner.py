"""Run the `expscore` entry point in-process, as a shell would: exit code, stdout, stderr."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli import main


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    monkeypatch.setattr(sys, "argv", ["expscore", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
