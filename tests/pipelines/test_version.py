"""Which code ran (`expscore --version`, a manifest's `code_version`): the package version, plus
the commit and whether tracked files differ from it when the code runs from a git checkout; the
package version alone outside a checkout, without git, or where git cannot read the folder."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

import pytest

from pipelines import version
from pipelines.cli.main import version_text
from pipelines.version import CodeVersion, code_version

PACKAGE = importlib.metadata.version("expscore")


@pytest.fixture(autouse=True)
def uncached():
    """`code_version` is looked up once per process: each test looks it up afresh, and leaves
    no lookup of a made-up checkout behind for the tests that follow."""
    code_version.cache_clear()
    yield
    code_version.cache_clear()


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout


def test_the_commit_of_a_checkout_and_whether_it_was_changed(monkeypatch, tmp_path) -> None:
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "tracked.py").write_text("x = 1\n")
    git(repo, "add", "tracked.py")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    monkeypatch.setattr(version, "ROOT", repo)

    (repo / "untracked.txt").write_text("not part of the code\n")  # does not make it dirty
    assert code_version() == CodeVersion(PACKAGE, head, False)
    assert str(code_version()) == f"{PACKAGE}+{head}"
    assert version_text() == f"expscore {PACKAGE} (commit {head})"

    (repo / "tracked.py").write_text("x = 2\n")
    code_version.cache_clear()
    assert code_version() == CodeVersion(PACKAGE, head, True)
    assert str(code_version()) == f"{PACKAGE}+{head}.dirty"
    assert version_text() == f"expscore {PACKAGE} (commit {head}, modified)"


def test_outside_a_checkout_the_version_is_the_package_alone(monkeypatch, tmp_path) -> None:
    """An installed copy (no `.git` beside the package) takes no commit, not even that of a
    repository it happens to sit in."""
    monkeypatch.setattr(version, "ROOT", tmp_path)
    assert code_version() == CodeVersion(PACKAGE, None, False)
    assert str(code_version()) == PACKAGE
    assert version_text() == f"expscore {PACKAGE}"


@pytest.mark.parametrize("cause", ["git is not installed", "git cannot read the checkout"])
def test_without_a_readable_commit_the_version_is_the_package_alone(
    monkeypatch, tmp_path, cause: str
) -> None:
    (tmp_path / ".git").write_text("gitdir: /nowhere\n")  # as a worktree's `.git` file
    if cause == "git is not installed":
        monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    monkeypatch.setattr(version, "ROOT", tmp_path)
    assert version._git("rev-parse", "HEAD") is None
    assert code_version() == CodeVersion(PACKAGE, None, False)
    assert str(code_version()) == PACKAGE


def test_code_not_installed_as_a_package_is_version_unknown(monkeypatch, tmp_path) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(version, "ROOT", tmp_path)
    assert code_version() == CodeVersion("unknown", None, False)
    assert version_text() == "expscore unknown"
