"""Hypothesis profiles and example budgets: "ci" (the default) and "thorough".

HYPOTHESIS_PROFILE selects the profile (tests/conftest.py loads it; `make test-thorough` sets it):

- "ci": derandomized, so a run tests the same examples every time and a failure reproduces;
  print_blob=True prints the `@reproduce_failure` line of a failure. Budgets are the ones below.
- "thorough": random, with the example database, and many more examples: what `make
  test-thorough` runs now and then to search harder than CI does.

An explicit `@settings(max_examples=N)` overrides a profile, so a test with its own budget asks
`examples(N)` for it: N under "ci", more under "thorough".
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
CI = "ci"
THOROUGH = "thorough"

# Hypothesis ships its own "ci" profile (deadline=None, ...): ours replaces it and, like
# "thorough", starts from Hypothesis' defaults, so a test keeps its own deadline and health checks.
_DEFAULTS = settings.get_profile("default")
settings.register_profile(CI, _DEFAULTS, derandomize=True, print_blob=True)
settings.register_profile(THOROUGH, _DEFAULTS, max_examples=1_000, print_blob=True)


def load_profile_from_environment() -> str:
    """Load the profile HYPOTHESIS_PROFILE names ("ci" when unset); return its name."""
    name = os.environ.get(PROFILE_VARIABLE) or CI
    if name not in (CI, THOROUGH):
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: expected {CI!r} or {THOROUGH!r}")
    settings.load_profile(name)
    return name


def examples(ci_count: int, *, thorough_cap: int = 10_000) -> int:
    """`max_examples` for a test whose CI budget is `ci_count`, under the loaded profile.

    "thorough" gives max(200, 20 × ci_count), at most `thorough_cap`: tests that run the whole
    pipeline per example (about 1-2 s each on 2 cores) cap it so that the thorough run stays
    well under an hour. Never fewer than `ci_count`.
    """
    if settings.get_current_profile_name() != THOROUGH:
        return ci_count
    return max(ci_count, min(max(200, 20 * ci_count), thorough_cap))
