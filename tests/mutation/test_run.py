"""The mutation runner's own logic (tests/mutation/run.py), on temporary files: no pytest runs.

What matters most is that a stale list can never pass silently: a snippet that is gone, or
that now occurs twice, must stop the run and name its mutant, and a planted mutant must be
taken out again exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutation.run import (
    MUTANTS_FILE,
    Mutant,
    MutantListError,
    Outcome,
    apply_mutant,
    check_mutants,
    first_failure,
    format_table,
    kill_rate_line,
    load_mutants,
    make_copy,
    select,
)

SOURCE = "def on_time(pickup, deadline):\n    return pickup <= deadline\n\nLIMIT = 180\n"


def mutant(original: str = "pickup <= deadline", replacement: str = "pickup < deadline") -> Mutant:
    return Mutant("pickup-strict", "scoring/x.py", original, replacement, "4: <= deadline")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "scoring").mkdir()
    (tmp_path / "scoring" / "x.py").write_text(SOURCE)
    return tmp_path


def test_apply_plants_the_mutant_and_returns_the_text_to_restore(root: Path) -> None:
    before = apply_mutant(root, mutant())
    assert before == SOURCE
    assert (root / "scoring" / "x.py").read_text() == SOURCE.replace("<=", "<")


@pytest.mark.parametrize(
    ("original", "found"),
    [("pickup >= deadline", 0), ("deadline", 2)],  # gone from the code; now ambiguous
)
def test_a_snippet_not_found_exactly_once_is_stale_and_names_the_mutant(
    root: Path, original: str, found: int
) -> None:
    with pytest.raises(MutantListError, match=f"pickup-strict is stale.*occurs {found} times"):
        apply_mutant(root, mutant(original))
    with pytest.raises(MutantListError, match="pickup-strict is stale"):
        check_mutants(root, [mutant(original)])
    assert (root / "scoring" / "x.py").read_text() == SOURCE  # nothing was written


def test_a_missing_file_is_stale(root: Path) -> None:
    (root / "scoring" / "x.py").unlink()
    with pytest.raises(MutantListError, match=r"pickup-strict is stale.*does not exist"):
        check_mutants(root, [mutant()])


def test_a_mutant_that_does_not_compile_is_refused(root: Path) -> None:
    check_mutants(root, [mutant()])  # the good one passes
    with pytest.raises(MutantListError, match="pickup-strict plants code that does not compile"):
        check_mutants(root, [mutant(replacement="pickup <= = deadline")])


def test_the_copy_holds_what_the_tests_need_and_no_bytecode(tmp_path: Path) -> None:
    source = tmp_path / "repo"
    for folder in ("scoring", "pipelines", "tests", "data_samples/raw"):
        (source / folder / "__pycache__").mkdir(parents=True)
        (source / folder / "a.py").write_text("A = 1\n")
        (source / folder / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"stale")
    (source / "pyproject.toml").write_text("[project]\n")
    (source / "README.md").write_text("not needed\n")
    copy = make_copy(tmp_path / "copy", source)
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    assert copied == [
        "data_samples/raw/a.py", "pipelines/a.py", "pyproject.toml", "scoring/a.py", "tests/a.py",
    ]  # fmt: skip


def write_list(path: Path, entries: list[dict[str, str]]) -> Path:
    lines = []
    for entry in entries:
        lines.append("[[mutant]]")
        lines += [f"{key} = {value!r}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


ENTRY = {
    "id": "a",
    "file": "scoring/x.py",
    "original": "<=",
    "mutant": "<",
    "why": "4: a rule",
}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([ENTRY, ENTRY], "mutant a: the id is used twice"),
        ([{**ENTRY, "why": None}], "mutant a: missing \\['why'\\]"),
        ([{**ENTRY, "file": "pipelines/run.py"}], "mutant a: pipelines/run.py is not under"),
        ([{**ENTRY, "file": "scoring/../pipelines/run.py"}], "is not under scoring/"),
        ([{**ENTRY, "mutant": "<="}], "mutant a: the mutant must change"),
        ([{**ENTRY, "extra": "x"}], "unknown \\['extra'\\]"),
    ],
)
def test_a_malformed_list_is_refused(tmp_path: Path, entries: list[dict], message: str) -> None:
    entries = [{k: v for k, v in e.items() if v is not None} for e in entries]
    path = write_list(tmp_path / "mutants.toml", entries)
    with pytest.raises(MutantListError, match=message):
        load_mutants(path)


def test_only_selects_by_id_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    path = write_list(tmp_path / "m.toml", [ENTRY, {**ENTRY, "id": "b"}, {**ENTRY, "id": "c"}])
    mutants = load_mutants(path)
    assert [m.id for m in select(mutants, ["c", "a"])] == ["a", "c"]  # list order
    assert [m.id for m in select(mutants, None)] == ["a", "b", "c"]
    with pytest.raises(MutantListError, match="no mutant with id zz"):
        select(mutants, ["a", "zz"])


def test_the_kept_list_is_well_formed_and_stays_out_of_the_code_being_reshaped() -> None:
    mutants = load_mutants(MUTANTS_FILE)
    assert 30 <= len(mutants) <= 45
    assert [m.id for m in mutants if not m.why[:1].isdigit()] == []  # each names its rule
    assert not [m.id for m in mutants if m.file == "scoring/daily.py"]


PYTEST_OUTPUT = """\
..........F
=================================== FAILURES ===================================
___________________________ test_pickup_on_time_rate ___________________________
E   assert 0.5 == 1.0
=========================== short test summary info ============================
FAILED tests/scoring/test_facts.py::test_pickup_on_time_rate - assert 0.5 == 1.0
!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!
1 failed, 10 passed in 3.21s
"""


def test_first_failure_is_read_from_the_summary() -> None:
    assert first_failure(PYTEST_OUTPUT) == "tests/scoring/test_facts.py::test_pickup_on_time_rate"
    collection = "ERROR tests/scoring/test_facts.py - NameError: name 'x' is not defined\n"
    assert first_failure(collection) == "tests/scoring/test_facts.py"
    assert first_failure("361 passed in 61.79s\n") is None


def test_kill_rate_and_table() -> None:
    outcomes = [
        Outcome("a", "scoring/x.py", "killed", 3.04, "tests/t.py::test_a", "4"),
        Outcome("b", "scoring/y.py", "survived", 61.0, None, "5"),
        Outcome("c", "scoring/x.py", "timeout", 900.0, "no result after 900 s", "6"),
    ]
    assert kill_rate_line(outcomes) == "kill rate: 2/3 (67%)"
    assert kill_rate_line([]) == "kill rate: 0/0 (0%)"
    table = format_table(outcomes).splitlines()
    assert table[0].split() == ["id", "file", "result", "seconds", "first", "failing", "test"]
    assert table[3].split() == ["b", "scoring/y.py", "survived", "61.0", "-"]
