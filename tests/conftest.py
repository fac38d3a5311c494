"""Loads the Hypothesis profile HYPOTHESIS_PROFILE names: "ci" (default) or "thorough".

The profiles and the per-test example budgets are in tests/hypothesis_budget.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.golden import produce
from tests.hypothesis_budget import load_profile_from_environment

load_profile_from_environment()


@pytest.fixture(scope="session")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden backfill of the sample (`tests.golden.produce`), run once per session."""
    out = tmp_path_factory.mktemp("golden-run")
    produce(out)
    return out


@pytest.fixture(scope="module")
def sample_output(golden_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the golden run's output for one test module, which may write into it."""
    out = tmp_path_factory.mktemp("sample-output") / "out"
    shutil.copytree(golden_run, out)
    return out
