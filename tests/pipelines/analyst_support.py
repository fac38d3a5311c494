"""Shared by the tests of explain, query, report and progress: run the CLI, build the sample output.

Each test module reads a copy of the golden run's output (the `sample_output` fixture of
tests/conftest.py: the sample's golden dates, backfilled once a session), so the analyst
commands are tested on the same tables the golden test pins down.
"""

from __future__ import annotations

import sys

import pytest

from pipelines.cli.main import main


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
