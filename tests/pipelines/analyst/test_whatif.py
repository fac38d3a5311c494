"""`expscore whatif` on the committed sample: the command, its JSON and HTML, and that it scores
through the same code path as a run while publishing nothing.

Each module fixture runs one what-if; the tests only read its results.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import pipelines.analyst.whatif as whatif_module
from pipelines.cli.main import app, main
from pipelines.layout import manifest_path
from pipelines.nightly.publish import publish_partition, write_json_atomic
from pipelines.nightly.run import load_rules, run_day
from scoring.catalog import LABELS
from tests.builders import DEFAULT_RULES_PATH, ts, write_partition

ROOT = Path(__file__).resolve().parents[3]
RAW = ROOT / "data_samples" / "raw"
EXAMPLE = ROOT / "examples" / "rules.stricter_help_1001.toml"
DATE = "2026-02-28"
SECTIONS = {
    "summary": "Summary",
    "rules": "Rules that differ",
    "migration": "Band migration",
    "shares": "Shares of 4.8+, campaign-eligible and refund-only tiers",
    "traffic": "Traffic weight by category",
    "movers": "Largest traffic-weight gains and losses",
    "labels": "Labels gained and lost",
}


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, ["whatif", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def tree(folder: Path) -> dict[str, str]:
    """Every file under a folder with a hash of its bytes: to show nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of a function the what-if module uses."""
    calls: list[int] = []
    real = getattr(whatif_module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(whatif_module, name, wrapper)
    return calls


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The README example: a stricter platform-help standard for category 1001, empty --out."""
    tmp = tmp_path_factory.mktemp("whatif_example")
    out, html_file, json_file = tmp / "out", tmp / "report.html", tmp / "report.json"
    with pytest.MonkeyPatch.context() as mp:
        facts_calls = counting(mp, "window_facts")
        result = invoke(
            "--rules", str(EXAMPLE), "--date", DATE, "--raw", str(RAW), "--out", str(out),
            "--html", str(html_file), "--json", str(json_file),
        )  # fmt: skip
    return {
        "stdout": result.output,
        "out": out,
        "html": html_file.read_text("utf-8"),
        "json": json.loads(json_file.read_text("utf-8")),
        "facts_calls": len(facts_calls),
    }


@pytest.fixture(scope="module")
def identical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shipped rules file against the shipped rules: nothing may move."""
    tmp = tmp_path_factory.mktemp("whatif_identical")
    html_file, json_file = tmp / "report.html", tmp / "report.json"
    result = invoke(
        "--rules", str(DEFAULT_RULES_PATH), "--date", DATE, "--raw", str(RAW),
        "--out", str(tmp / "out"), "--html", str(html_file), "--json", str(json_file),
    )  # fmt: skip
    return {
        "stdout": result.output,
        "html": html_file.read_text("utf-8"),
        "json": json.loads(json_file.read_text("utf-8")),
    }


# --------------------------------------------------------------------------------------------
# the command


def test_prints_a_summary_and_publishes_nothing(example) -> None:
    lines = example["stdout"].splitlines()
    assert lines[0].startswith(f"expscore what-if {DATE}: 2026.2 (")
    assert "→ 2026.3-draft (" in lines[0]
    assert "categories.1001.indicators.platform_help_rate.knots" in lines[1]
    assert "computed once, shared by both rule sets" in example["stdout"]
    assert "largest loss: shop " in example["stdout"]
    assert not example["out"].exists()  # --out is only read; here there was nothing


def test_facts_are_loaded_and_computed_once_for_both_rule_sets(example) -> None:
    assert example["facts_calls"] == 1
    assert example["json"]["facts_shared"] is True


def test_help_lists_whatif(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["expscore", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    assert "whatif" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# JSON


def test_json_has_every_section(example) -> None:
    report = example["json"]
    assert set(report) == {
        "report", "run_date", "raw", "out", "base_rules", "new_rules", "identical_rules",
        "facts_shared", "notes", "summary", "rules_changes", "rules_file_diff",
        "band_migration", "shares", "traffic_weight", "labels",
    }  # fmt: skip
    assert report["run_date"] == DATE and report["identical_rules"] is False
    assert report["base_rules"]["version"] == "2026.2"
    assert report["new_rules"] == {"version": "2026.3-draft", "source": str(EXAMPLE)}
    migration = report["band_migration"]
    assert migration["bands"] == ["4.8+", "4.5-4.8", "4.0-4.5", "<4.0", "unscored"]
    matrix = migration["overall"]
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix)
    assert sum(map(sum, matrix)) == report["summary"]["shops"] == 299
    categories = [c["main_category_id"] for c in migration["by_category"]]
    assert categories == sorted(categories) and len(categories) == 7
    assert sum(sum(map(sum, c["matrix"])) for c in migration["by_category"]) == 299
    assert [s["metric"] for s in report["shares"]] == [
        "4.8+ shops", "campaign-eligible shops", "campaign-eligible items",
        "refund-only tier autonomous", "refund-only tier negotiate_first",
        "refund-only tier standard",
    ]  # fmt: skip
    weights = report["traffic_weight"]
    assert {"shops_by_main_category", "items_by_category", "top_gains", "top_losses"} == set(
        weights
    )
    assert len(weights["top_losses"]) == 20
    assert [label["label"] for label in report["labels"]] == [label.id for label in LABELS]


def test_json_stricter_category_rule_moves_only_its_shops_downward(example) -> None:
    report = example["json"]
    summary = report["summary"]
    # on the sample no 1001 shop sits close enough to a band edge to cross it: scores move,
    # bands do not; any band move would have to be down, and in 1001
    assert summary["moved_up"] == summary["moved_other"] == 0
    assert summary["score_up"] == 0 and summary["score_down"] > 0
    moves = report["band_migration"]["moves_by_category"]
    assert {m["main_category_id"] for m in moves} <= {1001}
    assert all(m["direction"] == "down" for m in moves)
    moved = report["band_migration"]["shops_moved"]
    assert len(moved) == summary["band_changed"]
    assert all(m["score_new"] < m["score_old"] for m in moved)
    weights = report["traffic_weight"]
    assert weights["top_gains"] == []
    for loser in weights["top_losses"]:
        assert loser["main_category_id"] == 1001
        assert loser["target_weight_change"] < 0
        assert [d["indicator"] for d in loser["drivers"]] == ["platform_help_rate"]
        assert loser["drivers"][0]["effect"] == pytest.approx(loser["score_change"], abs=1e-12)
    by_category = {c["main_category_id"]: c for c in weights["shops_by_main_category"]}
    assert by_category[1001]["target_weight_change"] < 0
    assert all(c["target_weight_change"] == 0 for k, c in by_category.items() if k != 1001)
    assert sum(c["target_weight_share_change"] for c in by_category.values()) == pytest.approx(0)


def test_json_lists_each_changed_rule(example) -> None:
    changes = example["json"]["rules_changes"]
    assert [(c["rule"], c["scope"]) for c in changes] == [
        ("version", "all shops"),
        ("categories.1001.indicators.platform_help_rate.knots", "main category 1001"),
    ]
    knots = changes[1]
    assert knots["old"] == [[0.0, 5.0], [0.002, 4.8], [0.005, 4.5], [0.01, 4.0], [0.03, 3.0]]
    assert knots["new"] == [[0.0, 5.0], [0.001, 4.8], [0.0025, 4.5], [0.005, 4.0], [0.015, 3.0]]
    diff = example["json"]["rules_file_diff"]
    assert "+[categories.1001.indicators.platform_help_rate]" in diff


def test_identical_rule_files_give_an_empty_migration_and_zero_shifts(identical) -> None:
    report = identical["json"]
    assert report["identical_rules"] is True and report["rules_changes"] == []
    assert report["rules_file_diff"] == []
    summary = report["summary"]
    assert summary["band_changed"] == summary["score_up"] == summary["score_down"] == 0
    assert summary["weight_changed"] == summary["target_weight_changed"] == 0
    assert report["band_migration"]["moves_by_category"] == []
    assert report["band_migration"]["shops_moved"] == []
    matrix = report["band_migration"]["overall"]
    assert all(n == 0 for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j)
    assert all(s["share_change"] == 0 and s["count_change"] == 0 for s in report["shares"])
    weights = report["traffic_weight"]
    assert weights["top_gains"] == [] and weights["top_losses"] == []
    for row in weights["shops_by_main_category"]:
        assert row["weight_change"] == row["target_weight_change"] == 0
    assert all(i["weight_change"] == 0 for i in weights["items_by_category"])
    assert all(lab["gained"] == lab["lost"] == 0 for lab in report["labels"])
    assert "rules that differ: 0" in identical["stdout"]
    assert "The two rule sets are identical." in report["notes"]


# --------------------------------------------------------------------------------------------
# HTML


class _Page(HTMLParser):
    """Collects section ids, headings, and anything that would load from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.headings: list[str] = []
        self.external: list[str] = []
        self.tags: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
        if tag in ("h1", "h2", "h3"):
            self._in_heading = True
            self.headings.append("")
        for name in ("src", "href"):
            value = attributes.get(name)
            if value is not None and not value.startswith("#"):
                self.external.append(value)
        if tag in ("script", "link", "iframe", "img", "object"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def test_html_has_each_section(example) -> None:
    page = parse(example["html"])
    assert page.sections == list(SECTIONS)
    for title in SECTIONS.values():
        assert title in page.headings
    for heading in ("All shops", "By main category", "Largest gains (top 20)"):
        assert heading in page.headings
    html = example["html"]
    assert "categories.1001.indicators.platform_help_rate.knots" in html
    assert "platform_help_rate -0." in html  # drivers of the losers
    assert "<svg" in html and 'class="bars"' in html  # inline bars
    assert "No shop gains traffic weight." in html


def test_html_is_one_self_contained_file(example) -> None:
    html = example["html"]
    page = parse(html)
    assert page.external == []
    assert "http://" not in html and "https://" not in html and "url(" not in html
    assert "<style>" in html and page.tags.count("table") >= 6
    assert "&lt;4.0" in html and ">4.0-4.5 → <4.0<" not in html  # band names are escaped


def test_html_of_identical_rules_says_so(identical) -> None:
    page = parse(identical["html"])
    assert page.sections == list(SECTIONS)
    assert "No rule differs" in identical["html"]
    assert "No shop changes band in any category." in identical["html"]
    assert "No shop loses traffic weight." in identical["html"]


# --------------------------------------------------------------------------------------------
# same code path as a run, D-1 read from --out, nothing written there


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An --out holding D-1's tables: the what-if must use them and leave them untouched."""
    tmp = tmp_path_factory.mktemp("whatif_published")
    out = tmp / "out"
    base, new = load_rules(None), load_rules(EXAMPLE)
    day = dt.date.fromisoformat(DATE)
    previous = run_day(RAW, out, base, day - dt.timedelta(days=1), publish=False)
    for table in ("shop_labels", "shop_traffic_weights"):
        publish_partition(out, table, previous.run_date, previous.tables[table])
    # the manifest, written last, is what makes the day published (pipelines/nightly/run.py)
    write_json_atomic(manifest_path(out, previous.run_date), previous.manifest)
    before = tree(out)
    sides: list[Any] = []
    real = whatif_module.score_both
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(whatif_module, "score_both", lambda *a: sides.append(real(*a)) or sides[-1])
        result = invoke(
            "--rules", str(EXAMPLE), "--date", DATE, "--raw", str(RAW), "--out", str(out),
            "--json", str(tmp / "report.json"),
        )  # fmt: skip
    return {
        "out": out,
        "before": before,
        "after": tree(out),
        "stdout": result.output,
        "sides": sides[0],
        "run_new": run_day(RAW, out, new, day, publish=False).tables,
        "json": json.loads((tmp / "report.json").read_text("utf-8")),
    }


def test_what_if_scores_exactly_as_a_run_of_the_new_rules(published) -> None:
    _, new_side, shared = published["sides"]
    assert shared is True
    for name, expected in published["run_new"].items():
        assert new_side[name].equals(expected), name


def test_what_if_reads_d1_from_out_and_writes_nothing_there(published) -> None:
    assert published["before"] and published["after"] == published["before"]
    notes = " ".join(published["json"]["notes"])
    assert "Both sides start from the labels and weights published for 2026-02-27" in notes
    # hysteresis is in play: labels held on D-1 keep their since date on both sides
    old_side, new_side, _ = published["sides"]
    for side in (old_side, new_side):
        since = side["shop_labels"]["since"]
        assert (since < dt.date.fromisoformat(DATE)).any()


# --------------------------------------------------------------------------------------------
# different windows, tiny marketplaces, bad input


def test_different_windows_compute_facts_per_rule_set(tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "rules.window28.toml"
    other.write_text(
        EXAMPLE.read_text().replace("window_days = 30", "window_days = 28"), encoding="utf-8"
    )
    facts_calls = counting(monkeypatch, "window_facts")
    report = whatif_module.run_whatif(RAW, tmp_path / "out", other, None, dt.date(2026, 2, 28))
    assert len(facts_calls) == 2
    assert report.facts_shared is False and report.bands[-1] == "absent"
    assert any("count different rows" in note for note in report.notes)
    assert "window_days" in report.rules_changes["rule"].to_list()
    document = whatif_module.report_json(report)
    assert document["facts_shared"] is False
    assert len(document["band_migration"]["overall"]) == 6  # absent is a row and a column
    assert "count different rows" in whatif_module.report_html(report)


def test_a_new_exemption_is_a_rules_change_with_facts_per_rule_set(
    tmp_path: Path, monkeypatch
) -> None:
    """An exemption changes which rows the sums count (13.3): each side gets its own facts, the
    rules diff names the exemption, and shops it reaches move."""
    other = tmp_path / "rules.typhoon.toml"
    other.write_text(
        EXAMPLE.read_text()
        + '\n[[exemptions]]\nname = "storm"\npaid_from = 2026-02-08\npaid_to = 2026-02-26\n'
        'exclude_from = ["delivery_hours", "track_anomaly_rate", "pickup_on_time_rate"]\n',
        encoding="utf-8",
    )
    facts_calls = counting(monkeypatch, "window_facts")
    report = whatif_module.run_whatif(RAW, tmp_path / "out", other, None, dt.date(2026, 2, 28))
    assert len(facts_calls) == 2
    assert report.facts_shared is False
    changes = report.rules_changes.filter(pl.col("rule") == "exemptions.storm")
    assert changes["note"].to_list() == ["new exemption"]
    gains = whatif_module.report_json(report)["traffic_weight"]["top_gains"]
    assert gains, "an exemption of three logistics indicators over 19 days lifts some shop"


def test_a_tiny_marketplace_gives_a_valid_report(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_partition(raw, "cs_sessions", dt.date(2026, 3, 2), [{"started_at": ts(2026, 3, 2, 3)}])
    report = whatif_module.run_whatif(raw, tmp_path / "out", EXAMPLE)
    assert report.run_date == dt.date(2026, 3, 2)
    text = json.dumps(whatif_module.report_json(report), allow_nan=False)  # no NaN anywhere
    assert json.loads(text)["summary"]["shops"] == 1
    assert parse(whatif_module.report_html(report)).sections == list(SECTIONS)


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    monkeypatch.setattr(sys, "argv", ["expscore", "whatif", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_a_missing_rules_file_exits_2_in_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = cli(monkeypatch, capsys, "--rules", str(tmp_path / "nope.toml"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "nope.toml: cannot be read" in err


def test_a_bad_rules_file_exits_2_naming_the_key(monkeypatch, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("product = 0.35", "product = 0.45"))
    code, _, err = cli(monkeypatch, capsys, "--rules", str(EXAMPLE), "--base", str(bad))
    assert code == 2 and "dimension_weights: weights must sum to 1" in err


def test_report_files_may_not_go_under_out(monkeypatch, capsys, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("--rules", str(EXAMPLE), "--out", str(out), "--raw", str(RAW))
    code, _, err = cli(monkeypatch, capsys, *args, "--html", str(out / "whatif.html"))
    assert code == 2 and "--html" in err and "under --out" in err
    code, _, err = cli(monkeypatch, capsys, *args, "--json", str(out / "sub" / "whatif.json"))
    assert code == 2 and "--json" in err
    assert not out.exists()


def test_a_bad_date_is_a_usage_error(monkeypatch, capsys) -> None:
    code, _, err = cli(monkeypatch, capsys, "--rules", str(EXAMPLE), "--date", "tomorrow")
    assert code == 2 and "--date: 'tomorrow' is not a date" in err
