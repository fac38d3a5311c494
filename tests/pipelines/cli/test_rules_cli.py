"""`expscore rules check` prints every problem of a rules file at once; `run` validates the same
way; the JSON Schema in docs/ is the one generated from the rules' definition (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.cli.rules import schema_text
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
    assert stdout.startswith(f"rules file {DEFAULT_RULES_PATH}: ok (version 2026.2, ")


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


# The example of SCORING.md 11, and a second exemption with regions and a local ship_by.
EXEMPTIONS = """
[[exemptions]]
name = "spring_festival_2026"
paid_from = 2026-02-10
paid_to = 2026-02-23
ship_by = 2026-02-26T00:00:00+08:00
exclude_from = ["delivery_hours", "track_anomaly_rate", "delivery_promise_rate"]

[[exemptions]]
name = "typhoon_2026_08"
paid_from = 2026-08-01
paid_to = 2026-08-03
regions = ["GD", "HI"]
ship_by = 2026-08-06T12:00:00
"""
# Three exemption mistakes: platform_help_rate excluded, dates the wrong way round, a name twice.
BAD_EXEMPTIONS = """
[[exemptions]]
name = "spring_festival_2026"
paid_from = 2026-02-10
paid_to = 2026-02-23
exclude_from = ["delivery_hours", "platform_help_rate"]

[[exemptions]]
name = "typhoon_2026_08"
paid_from = 2026-08-03
paid_to = 2026-08-01
ship_by = 2026-08-06T12:00:00
"""


def rules_with_exemptions(folder: Path, exemptions: str) -> Path:
    """The shipped rules with `exemptions` in place of any the shipped file has (they are its
    last tables, as in SCORING.md 11)."""
    text = DEFAULT_RULES_PATH.read_text("utf-8").split("\n[[exemptions]]", 1)[0]
    path = folder / "exemptions.toml"
    path.write_text(text + "\n" + exemptions, "utf-8")
    return path


def test_check_lists_the_exemptions_as_the_run_reads_them(monkeypatch, capsys, tmp_path) -> None:
    path = rules_with_exemptions(tmp_path, EXEMPTIONS)
    code, stdout, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 0 and stderr == ""
    first, *exemptions = stdout.splitlines()
    assert first.startswith(f"rules file {path}: ok (version ")
    assert ", 1 category override, 2 exemptions, sha256 " in first
    assert exemptions == [
        "  exemption spring_festival_2026: 2026-02-10 to 2026-02-23 (local dates, Asia/Shanghai); "
        "regions: all; ship_by: 2026-02-26T00:00:00 Asia/Shanghai = 2026-02-25T16:00:00Z; "
        "excluded from: delivery_hours, track_anomaly_rate, delivery_promise_rate",
        # a local ship_by is read in the rules' time zone: 12:00 at UTC+8 is 04:00 UTC
        "  exemption typhoon_2026_08: 2026-08-01 to 2026-08-03 (local dates, Asia/Shanghai); "
        "regions: GD, HI (orders only); ship_by: 2026-08-06T12:00:00 Asia/Shanghai = "
        "2026-08-06T04:00:00Z; excluded from: none",
    ]


def test_check_shows_an_exemption_without_ship_by(monkeypatch, capsys, tmp_path) -> None:
    """An exemption may only take rows out of indicators: no pickup deadline moves."""
    flood = (
        '[[exemptions]]\nname = "flood"\npaid_from = 2026-07-01\npaid_to = 2026-07-02\n'
        'regions = ["HN"]\nexclude_from = ["negative_review_rate"]\n'
    )
    path = rules_with_exemptions(tmp_path, flood)
    code, stdout, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 0 and stderr == ""
    assert stdout.splitlines()[1:] == [
        "  exemption flood: 2026-07-01 to 2026-07-02 (local dates, Asia/Shanghai); "
        "regions: HN (orders only); ship_by: none; excluded from: negative_review_rate"
    ]


def test_check_without_exemptions_says_so(monkeypatch, capsys, tmp_path) -> None:
    path = rules_with_exemptions(tmp_path, "")
    code, stdout, _ = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 0
    [line] = stdout.splitlines()
    assert ", 1 category override, 0 exemptions, sha256 " in line


def test_check_prints_each_exemption_problem_with_its_key_path(monkeypatch, capsys, tmp_path):
    path = rules_with_exemptions(tmp_path, BAD_EXEMPTIONS + BAD_EXEMPTIONS)
    code, stdout, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 2 and stdout == ""
    platform_help = (
        "platform_help_rate cannot be excluded: it mixes help refunds and escalated sessions over "
        "|V| (valid orders), so no one kind of row can leave it; SCORING.md 13.3 does not allow it"
    )
    after = "paid_from 2026-08-03 is after paid_to 2026-08-01"
    prefix = f"expscore: error: rules file {path}: "
    assert stderr.splitlines() == [
        f"{prefix}exemptions[0].exclude_from[1]: {platform_help}",
        f"{prefix}exemptions[1]: {after}",
        f"{prefix}exemptions[2].exclude_from[1]: {platform_help}",
        f"{prefix}exemptions[3]: {after}",
    ]
    # once each exemption is right, the repeated names are the file's one problem
    fixed = BAD_EXEMPTIONS.replace(', "platform_help_rate"', "").replace(
        "paid_from = 2026-08-03\npaid_to = 2026-08-01",
        "paid_from = 2026-08-01\npaid_to = 2026-08-03",
    )
    path = rules_with_exemptions(tmp_path, fixed + fixed)
    code, _, stderr = cli(monkeypatch, capsys, "rules", "check", str(path))
    assert code == 2
    assert stderr.splitlines() == [
        f"expscore: error: rules file {path}: exemptions: name 'spring_festival_2026' is used by "
        "exemptions[0] and exemptions[2]; name 'typhoon_2026_08' is used by exemptions[1] and "
        "exemptions[3] (names must be unique)"
    ]


def test_run_refuses_a_bad_exemption_naming_its_key_path(monkeypatch, capsys, tmp_path) -> None:
    raw, path = tiny_raw(tmp_path / "raw"), rules_with_exemptions(tmp_path, BAD_EXEMPTIONS)
    out = tmp_path / "out"
    code, _, stderr = cli(
        monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out), "--rules", str(path)
    )
    assert code == 2
    [line] = error_lines(stderr)
    assert line == (
        f"expscore: error: rules file {path}: 2 problems: exemptions[0].exclude_from[1]: "
        "platform_help_rate cannot be excluded: it mixes help refunds and escalated sessions "
        "over |V| (valid orders), so no one kind of row can leave it; SCORING.md 13.3 does not "
        "allow it; exemptions[1]: paid_from 2026-08-03 is after paid_to 2026-08-01 (each on a "
        f"line of its own: expscore rules check {path})"
    )
    assert not (out / "shop_scores").exists()
