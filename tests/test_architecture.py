"""The house rules of docs/architecture.md: imports only go down, and every module says what it
is for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scoring", "pipelines")


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_import_contracts_hold() -> None:
    """import-linter checks the contracts of pyproject.toml ([tool.importlinter]) against the
    real import graph: scoring imports nothing of pipelines, the night never imports the
    analyst or developer tools, and each layer imports only the layers below it."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_opens_with_what_it_is_for() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for path in modules()
        if path.name != "__main__.py" and not ast.get_docstring(ast.parse(path.read_text("utf-8")))
    ]
    assert missing == []


# A module says one thing: past about 500 lines it is split, unless it is one concept, named here
# with the reason (issue 22).
LONG_LINES = 550
ONE_CONCEPT = {
    "scoring/rules.py": "the rules file as data: its models, their checks and the typed rules",
    "scoring/analysis/whatif.py": "comparing two rule sets' tables, one frame per question",
    "pipelines/state/shard.py": "one shard's night, each step folding into the same files",
    "pipelines/devtools/bench_peer.py": "the SQL peer: the spec written as SQL text",
}


def test_a_module_over_about_500_lines_is_one_named_concept() -> None:
    long = {
        str(path.relative_to(ROOT))
        for path in modules()
        if len(path.read_text("utf-8").splitlines()) > LONG_LINES
    }
    assert long <= set(ONE_CONCEPT), sorted(long - set(ONE_CONCEPT))
