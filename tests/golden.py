"""Golden regression on the committed sample: `data_samples/expected/` holds the tables.

The golden run is a backfill of the sample's last five dates into an empty output, so the
tables also pin down label hysteresis and the weight clamp: on these dates the clamp binds
both ways, a label is kept by hysteresis and another dropped (`tests/test_golden.py` checks
that the sample keeps exercising them). Regenerating is deliberate:
`make golden` prints, per table and date, what changes against the files it replaces (rows
added, removed and changed by the table's key, and values changed per column), then review
`git diff --stat data_samples/expected` before committing.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.ingest.load import latest_partition_date
from pipelines.layout import partition_date
from pipelines.nightly.run import backfill, load_rules
from pipelines.published import scan_day
from scoring.contract import QUARANTINE_TABLE, TABLE_KEYS, TABLE_SCHEMAS
from tests.compare import _same

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RAW = ROOT / "data_samples" / "raw"
EXPECTED = ROOT / "data_samples" / "expected"
GOLDEN_DAYS = 5
TABLES = [*TABLE_SCHEMAS, QUARANTINE_TABLE]


def golden_dates() -> list[dt.date]:
    last = latest_partition_date(SAMPLE_RAW)
    return [last - dt.timedelta(days=n) for n in reversed(range(GOLDEN_DAYS))]


def produce(out: Path) -> list[dt.date]:
    """Run the golden backfill into `out`; return its dates."""
    dates = golden_dates()
    backfill(SAMPLE_RAW, out, load_rules(None), dates[0], dates[-1])
    return dates


def table_path(root: Path, table: str, day: dt.date) -> Path:
    return root / table / f"dt={day.isoformat()}" / "part-0.parquet"


def read(root: Path, table: str, day: dt.date) -> pl.DataFrame:
    """A table's partition as the analyst commands read it: `dt` from the folder name (the
    files hold no `dt` column), in the column order `run` builds."""
    return scan_day(root, table, day).collect()


@dataclass(frozen=True)
class FrameChange:
    """How one version of a table (`new`) differs from another (`old`).

    Rows are matched by `key`; without a key (or when the key does not identify the rows of
    either side) whole rows are matched, and a changed row counts as one removed and one added.
    Values compare as in tests/compare.py: floats within 1e-9, nulls equal to nulls.
    """

    rows_before: int
    rows_after: int
    added: int
    removed: int
    changed: int  # rows matched by key with at least one value changed (0 for whole rows)
    by_key: bool = True  # False: whole rows were matched
    by_column: dict[str, int] = field(default_factory=dict)  # values changed, per column
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    types_changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def same_content(self) -> bool:
        """Same columns, types, rows and values (within the tolerance)."""
        rows = (self.added, self.removed, self.changed)
        return not any(rows) and not (
            self.columns_added or self.columns_removed or self.types_changed
        )

    def summary(self) -> str:
        rows = f"rows {self.rows_before} -> {self.rows_after}: "
        if not self.by_key:
            return rows + f"added {self.added}, removed {self.removed} (whole rows)"
        return rows + f"added {self.added}, removed {self.removed}, changed {self.changed}"

    def details(self) -> list[str]:
        """One line per column added, removed, retyped or with values changed."""
        lines = [f"column {c} added" for c in self.columns_added]
        lines += [f"column {c} removed" for c in self.columns_removed]
        lines += [f"{c}: type {a} -> {b}" for c, (a, b) in self.types_changed.items()]
        lines += [f"{c}: {n} value{'s' * (n != 1)} changed" for c, n in self.by_column.items()]
        return lines


def _rows_by_key(frame: pl.DataFrame, key: list[str]) -> dict[tuple, dict] | None:
    """The rows of `frame` by `key`; None when the key is missing or not unique."""
    if not set(key) <= set(frame.columns):
        return None
    rows = {tuple(row[k] for k in key): row for row in frame.iter_rows(named=True)}
    return rows if len(rows) == frame.height else None


def frame_change(old: pl.DataFrame, new: pl.DataFrame, key: list[str] | None) -> FrameChange:
    """What changes from `old` to `new`, rows matched by `key` (None: whole rows)."""
    shared = [c for c in new.columns if c in old.columns]
    common = {
        "rows_before": old.height,
        "rows_after": new.height,
        "columns_added": [c for c in new.columns if c not in old.columns],
        "columns_removed": [c for c in old.columns if c not in new.columns],
        "types_changed": {
            c: (str(old.schema[c]), str(new.schema[c]))
            for c in shared
            if old.schema[c] != new.schema[c]
        },
    }
    before = _rows_by_key(old, key) if key else None
    after = _rows_by_key(new, key) if key else None
    if before is None or after is None:  # whole rows, as a multiset
        mine = Counter(old.select(shared).iter_rows())
        theirs = Counter(new.select(shared).iter_rows())
        added, removed = theirs - mine, mine - theirs
        return FrameChange(
            **common, added=added.total(), removed=removed.total(), changed=0, by_key=False
        )
    by_column: Counter[str] = Counter()
    changed = 0
    for k in before.keys() & after.keys():
        differing = [c for c in shared if not _same(before[k][c], after[k][c])]
        by_column.update(differing)
        changed += bool(differing)
    return FrameChange(
        **common,
        added=len(after.keys() - before.keys()),
        removed=len(before.keys() - after.keys()),
        changed=changed,
        by_column={c: by_column[c] for c in shared if by_column[c]},
    )


def _partitions(root: Path, table: str) -> dict[dt.date, Path]:
    return {
        partition_date(p.parent.name): p for p in sorted((root / table).glob("dt=*/part-0.parquet"))
    }


def account(old_root: Path, new_root: Path) -> list[str]:
    """Per table and date, what replacing the tables under `old_root` by `new_root`'s changes."""
    lines = []
    tables = [*TABLES, *sorted({p.name for p in old_root.glob("*") if p.is_dir()} - {*TABLES})]
    for table in tables:
        old, new = _partitions(old_root, table), _partitions(new_root, table)
        if old.keys() == new.keys() and all(
            filecmp.cmp(old[d], new[d], shallow=False) for d in new
        ):
            lines.append(f"{table}: unchanged")
            continue
        lines.append(f"{table}:")
        for day in sorted(old.keys() | new.keys()):
            if day not in old:
                lines.append(f"  {day}: new, {pl.read_parquet(new[day]).height} rows")
            elif day not in new:
                lines.append(f"  {day}: removed ({pl.read_parquet(old[day]).height} rows)")
            elif filecmp.cmp(old[day], new[day], shallow=False):
                lines.append(f"  {day}: unchanged")
            else:
                change = frame_change(
                    pl.read_parquet(old[day]), pl.read_parquet(new[day]), TABLE_KEYS.get(table)
                )
                same = " (same rows and values; the files differ)" * change.same_content
                lines.append(f"  {day}: {change.summary()}{same}")
                lines += [f"    {line}" for line in change.details()]
    return lines


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        dates = produce(out)
        for line in account(EXPECTED, out):
            print(line)
        shutil.rmtree(EXPECTED, ignore_errors=True)
        for table in TABLES:
            for day in dates:
                target = table_path(EXPECTED, table, day)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(table_path(out, table, day), target)
    print(f"regenerated {EXPECTED} for {', '.join(d.isoformat() for d in dates)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["regenerate"]:
        sys.exit("usage: python -m tests.golden regenerate")
    regenerate()
