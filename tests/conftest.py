"""Loads the Hypothesis profile HYPOTHESIS_PROFILE names: "ci" (default) or "thorough".

The profiles and the per-test example budgets are in tests/hypothesis_budget.py.
"""

from __future__ import annotations

from tests.hypothesis_budget import load_profile_from_environment

load_profile_from_environment()
