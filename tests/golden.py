"""Golden regression on the committed sample: `data_samples/expected/` holds the tables.

The golden run is a backfill of the sample's last three dates into an empty output, so the
tables also pin down label hysteresis and the weight clamp. Regenerating is deliberate:
`make golden`, then review `git diff --stat data_samples/expected` before committing.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl

from pipelines.load import latest_partition_date
from pipelines.run import QUARANTINE_TABLE, backfill, load_rules
from scoring.daily import TABLE_SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RAW = ROOT / "data_samples" / "raw"
EXPECTED = ROOT / "data_samples" / "expected"
GOLDEN_DAYS = 3
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
    return pl.read_parquet(table_path(root, table, day))


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        dates = produce(out)
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
