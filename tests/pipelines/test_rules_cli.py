"""`expscore rules check` prints every problem of a rules file at once; `run` validates the same
way; the JSON Schema in docs/ is the one generated from the rules' definition (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.rules_cli import schema_text
from scoring.rules import rules_json_schema
from tests.builders import DEFAULT_RULES_PATH, tiny_raw
from tests.golden import ROOT
from tests.pipelines.cli_runner import cli, error_lines

SCHEMA_IN_DOCS = ROOT / "docs" / "rules.schema.json"


def bad_rules(folder: Path) -> Path:
    """The shipped rules with three mistakes in three tables."""
    text = DEFAULT_RULES_PATH.read_text("utf-8")
    fast_shipping = "[labels.fast_shipping]\nenter = 24.0\nexit = "
    for old, new in [
        ("window_days = 30", "window_days = 30.5"),  # not an integer
        ("product = 0.35", "product = 0.45"),  # dimension weights sum to 1.1
        (fast_shipping + "30.0", fast_shipping + "20.0"),  # keeping harder than gaining
    ]:
        assert old in text
        text = text.replace(old, new)
    path = folder / "bad rules.toml"
    path.write_text(text, "utf-8")
    return path


def test_check_prints_every_problem_on_its_own_line(monkeypatch, capsys, tmp_path) -> None:
    path = bad_rules(tmp_path)
    code, stdout, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 2 and stdout == ""
    assert stderr.splitlines() == [
        f"expscore: error: rules file {path}: window_days: must be an integer, got 30.5",
        f"expscore: error: rules file {path}: dimension_weights: weights must sum to 1, got 1.1",
        f"expscore: error: rules file {path}: labels.fast_shipping: exit 20.0 is on the wrong "
        "side of enter 24.0 (lower values are better, so a label must be easier to keep than to "
        "gain)",
    ]


def test_check_passes_the_shipped_rules(monkeypatch, capsys) -> None:
    code, stdout, stderr = cli(monkeypatch, capsys, "rules", "check", str(DEFAULT_RULES_PATH))
    assert code == 0 and stderr == ""
    assert stdout.startswith(f"rules file {DEFAULT_RULES_PATH}: ok (version 2026.1, ")


def test_check_names_a_file_that_is_not_toml(monkeypatch, capsys, tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("version = \n", "utf-8")
    code, _, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 2
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"expscore: error: rules file {path}: not valid TOML (")
    code, _, stderr = cli(monkeypatch, capsys, "rules", "check", str(tmp_path / "none.toml"))
    assert code == 2 and "cannot be read" in stderr


def test_run_refuses_the_same_file_in_one_line_naming_every_problem(
    monkeypatch, capsys, tmp_path
) -> None:
    raw, path = tiny_raw(tmp_path / "raw"), bad_rules(tmp_path)
    out = tmp_path / "out"
    code, _, stderr = cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out), "--rules", str(path)
    )
    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith(f"expscore: error: rules file {path}: 3 problems: window_days: ")
    for key in ("dimension_weights: ", "labels.fast_shipping: "):
        assert key in line
    assert line.endswith(f"(each on a line of its own: expscore rules check {path})")
    assert not (out / "shop_scores").exists()


def test_the_schema_in_docs_is_the_generated_one() -> None:
    """docs/rules.schema.json cannot go stale: regenerate it with `make schema`."""
    assert json.loads(SCHEMA_IN_DOCS.read_text("utf-8")) == rules_json_schema(), "make schema"
    assert SCHEMA_IN_DOCS.read_text("utf-8") == schema_text(), "make schema"


def test_schema_command_prints_it(monkeypatch, capsys, tmp_path) -> None:
    code, stdout, _ = cli(monkeypatch, capsys, "rules", "schema")
    assert code == 0 and json.loads(stdout) == rules_json_schema()
    target = tmp_path / "schema.json"
    code, stdout, _ = cli(monkeypatch, capsys, "rules", "schema", "--out", str(target))
    assert code == 0 and target.read_text("utf-8") == schema_text()


def test_check_with_json_logs_writes_one_json_error_per_problem(monkeypatch, capsys, tmp_path):
    path = bad_rules(tmp_path)
    code, _, stderr = cli(monkeypatch, capsys, "rules", "check", str(path), "--log-format", "json")
    assert code == 2
    records = [json.loads(line) for line in stderr.splitlines()]
    assert [(r["event"], r["exit_code"]) for r in records] == [("error", 2)] * 3
    assert records[1]["message"].startswith(f"rules file {path}: dimension_weights: ")
