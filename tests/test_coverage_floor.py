"""The coverage floor names every module under it (tests/coverage_floor.py)."""

from __future__ import annotations

from tests.coverage_floor import below_floor, branch_coverage


def test_modules_under_the_floor_are_named_and_a_module_without_branches_passes() -> None:
    report = {
        "files": {
            "scoring/a.py": {"summary": {"covered_branches": 17, "num_branches": 20}},  # 85%
            "scoring/b.py": {"summary": {"covered_branches": 16, "num_branches": 20}},  # 80%
            "pipelines/c.py": {"summary": {"covered_branches": 0, "num_branches": 0}},
        }
    }
    coverage = branch_coverage(report)
    assert coverage["scoring/b.py"] == (16, 20)
    assert below_floor(coverage) == ["scoring/b.py"]
    assert below_floor(coverage, floor=90.0) == ["scoring/a.py", "scoring/b.py"]
