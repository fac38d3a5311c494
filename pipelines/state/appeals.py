"""The window's appeals (SCORING.md 13.1, 13.2), kept by the driver for every shard.

Appeals are few (a few per thousand orders), and a subject is matched by its id alone: an
appealed refund's shard is not known from its `refund_id` (refunds follow their order). So the
driver keeps the good appeal rows of each raw partition (`appeals/<dt>`, listed in the state's
manifest like the quarantine), and each night tells every shard which subjects an upheld appeal
removes as of tonight's window and as of last night's (`upheld/now`, `upheld/before` in the
run's exchange). A shard then recounts exactly the rows whose status moved: those of the two
sets' difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.executors.exchange import Exchange
from pipelines.state.ingest import inbox_part, log_schema
from pipelines.state.store import Manifest, StateStore
from scoring.appeals import SUBJECT_KEYS, UPHELD_SCHEMA, Subject, upheld_subjects
from scoring.contract import LOGS
from scoring.current import current_rows
from scoring.window import Window

APPEALS = "appeals"  # the manifest's files entry of the kept appeals: appeals -> dt -> files
UPHELD = "upheld"  # the exchange's folder of the upheld subjects, "now" and "before"

Files = dict[str, dict[str, int]]  # dt -> file -> size


@dataclass(frozen=True)
class Upheld:
    """The subjects upheld appeals remove, at tonight's window and at last night's."""

    now: pl.DataFrame  # UPHELD_SCHEMA
    before: pl.DataFrame

    def changed(self, subject: Subject) -> pl.Series:
        """The ids of `subject` whose status moved tonight, sorted: the rows to recount."""
        now, before = (
            frame.filter(pl.col("subject") == subject)["subject_id"]
            for frame in (self.now, self.before)
        )
        moved = pl.concat([now, before]).value_counts().filter(pl.col("count") == 1)
        return moved["subject_id"].sort()


def keep_appeals(
    store: StateStore,
    manifest: Manifest | None,
    exchange: Exchange,
    window: Window,
    previous: Window | None,
    version: int,
) -> tuple[Files, Upheld, pl.DataFrame]:
    """Add tonight's appeal rows to the kept ones, drop the partitions that left the window,
    and return the files (by dt), the upheld subjects, and the window's appeals (for the
    manifest)."""
    kept: Files = dict(kept_files(manifest)) if manifest else {}
    stored = stored_rows(store, kept)
    new = pl.from_arrow(exchange.read_arrow(APPEALS, inbox_part(0))).cast(log_schema(APPEALS))  # type: ignore[union-attr]
    for (day,), rows in new.partition_by("dt", as_dict=True).items():
        name = store.new_file(0, APPEALS, day.isoformat(), version)
        kept[day.isoformat()] = {**kept.get(day.isoformat(), {}), name: store.write(rows, name)}
    # last night's subjects from what it had read; tonight's with tonight's rows too (a late
    # file can bring an appeal into a partition last night's window already held)
    tonight = current(pl.concat([stored, new]), window)
    upheld = Upheld(
        upheld_of(tonight),
        pl.DataFrame(schema=UPHELD_SCHEMA)
        if previous is None
        else upheld_of(current(stored, previous)),
    )
    exchange.write_parquet(upheld.now.to_arrow(), UPHELD, "now.parquet")
    exchange.write_parquet(upheld.before.to_arrow(), UPHELD, "before.parquet")
    first, last = window.first_date.isoformat(), window.run_date.isoformat()
    files = {day: f for day, f in kept.items() if first <= day <= last}
    return files, upheld, tonight


def kept_files(manifest: Manifest) -> Files:
    """The kept appeal files of a committed state, by raw partition."""
    return manifest.files.get(APPEALS, {}).get(APPEALS, {})


def stored_rows(store: StateStore, files: Files) -> pl.DataFrame:
    """Every kept appeal row of `files` (copies included), with its `dt`."""
    schema = log_schema(APPEALS)
    frames = [frame.cast(schema) for day in files.values() for frame in store.read(day)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def upheld_of(appeals: pl.DataFrame) -> pl.DataFrame:
    """`scoring.appeals.upheld_subjects` of current appeals, collected and in a fixed order."""
    return upheld_subjects(appeals.lazy()).collect().sort("subject", "subject_id")


def current(rows: pl.DataFrame, window: Window) -> pl.DataFrame:
    """The appeals of `window`'s partitions, one per appeal_id: copies that disagree count as
    the copy of the first partition (2.5), as for the other append-only logs."""
    in_window = rows.filter(pl.col("dt").is_between(window.first_date, window.run_date))
    return current_rows(in_window, "appeal_id", None, LOGS[APPEALS].column_names)


def appeals_report(appeals: pl.DataFrame, upheld: pl.DataFrame) -> dict:
    """The manifest's account of the window's appeals (13.4): read by outcome, and the distinct
    subjects the upheld ones remove (`upheld`, `upheld_of` the same appeals), by kind.
    (Quarantined appeals are in `rejected_by_reason`.)"""
    outcomes = dict(appeals.group_by("outcome").len().rows())
    subjects = dict(upheld.group_by("subject").len().rows())
    return {
        "read": {o: int(outcomes.get(o, 0)) for o in ("upheld", "rejected")},
        "subjects_upheld": {s: int(subjects.get(s, 0)) for s in SUBJECT_KEYS},
    }


def kept_appeals(store: StateStore, manifest: Manifest) -> pl.DataFrame:
    """The current appeals a committed state keeps (one row per appeal_id, 2.5)."""
    rows = stored_rows(store, kept_files(manifest))
    return current_rows(rows, "appeal_id", None, LOGS[APPEALS].column_names)


def read_upheld(exchange: Exchange) -> Upheld:
    """What `keep_appeals` told the shards (read by each shard task)."""
    now, before = (
        pl.from_arrow(exchange.read_parquet(UPHELD, f"{name}.parquet")).cast(UPHELD_SCHEMA)  # type: ignore[union-attr]
        for name in ("now", "before")
    )
    return Upheld(now, before)  # type: ignore[arg-type]
