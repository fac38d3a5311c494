"""Which code is running: the package version and, in a git checkout, the commit.

`expscore --version` prints it, and every run manifest records it (`code_version`), so a
published table can be traced to the code that computed it: two runs of one date under the same
rules that disagree differ in `code_version`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from dataclasses import dataclass
from pathlib import Path

# the checkout this module lives in, when it runs from one (an editable install, make run)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CodeVersion:
    package: str  # the installed distribution's version, "unknown" when not installed
    commit: str | None  # the checkout's HEAD (12 hex digits), None outside a checkout
    dirty: bool  # tracked files differ from the commit

    def __str__(self) -> str:
        """PEP 440 style: `0.1.0`, `0.1.0+eb8a253c41d2`, `0.1.0+eb8a253c41d2.dirty`."""
        if self.commit is None:
            return self.package
        return f"{self.package}+{self.commit}" + (".dirty" if self.dirty else "")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@functools.cache
def code_version() -> CodeVersion:
    """The running code's version, looked up once per process (a backfill writes many
    manifests). The commit is read only where this package's folder is a checkout's root, so an
    installed copy inside another repository does not take that repository's commit."""
    try:
        package = importlib.metadata.version("expscore")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    if not (ROOT / ".git").exists():  # a folder in a clone, a file in a worktree
        return CodeVersion(package, None, False)
    commit = _git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return CodeVersion(package, None, False)
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return CodeVersion(package, commit, bool(changes))
