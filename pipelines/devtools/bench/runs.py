"""The scenarios' child processes: the read-once floor, an `expscore run` or `backfill` with
its manifests' stage times, the SQL peer, and the output folders a run starts from."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.devtools.bench.children import (
    NO_LIMITS,
    BenchError,
    Limits,
    Measurement,
    ScenarioFailed,
    _require_success,
    failure_text,
    measure,
)
from pipelines.devtools.bench.data import Layout
from pipelines.ingest.load import column_list, sql_literal
from pipelines.layout import manifest_path, partition_dir
from scoring.contract import LOGS, PUBLISHED_TABLES, TABLE_SCHEMAS

FLOOR_SCRIPT = """
import json, sys, time
import duckdb
queries = json.loads(open(sys.argv[1], encoding="utf-8").read())
con = duckdb.connect()
con.sql("SET enable_progress_bar = false")
started = time.perf_counter()
logs = {}
for log, sql in queries.items():
    t = time.perf_counter()
    rows, digest = con.sql(sql).fetchall()[0]
    logs[log] = {"rows": rows, "digest": str(digest), "seconds": time.perf_counter() - t}
print(json.dumps({"seconds": time.perf_counter() - started, "logs": logs}))
"""


def floor_queries(files: Mapping[str, Sequence[Path]]) -> dict[str, str]:
    """Per log, one query that decodes every spec column of every file once.

    The spec's columns are what any run must read: each is validated, and a rejected row is kept
    whole in the quarantine. `sum(hash(...))` forces DuckDB to decode each value (a bare
    `count(*)` would be answered from the footers); `union_by_name` absorbs the files' allowed
    variations (column order, integer widths, naive timestamps, extra columns, an optional column
    left out). An optional column that none of the files carries (13.1: it reads as null) has
    nothing to decode and is not named, as DuckDB could not bind it.
    """
    queries = {}
    for log, paths in files.items():
        if not paths:
            continue
        schema = LOGS[log]
        optional = {c.name for c in schema.columns if c.optional}
        carried = {name for p in paths if optional for name in pq.read_schema(p).names}
        columns = column_list(c for c in schema.column_names if c not in optional - carried)
        listing = ", ".join(sql_literal(str(p)) for p in paths)
        queries[log] = (
            f"SELECT count(*), sum(hash({columns})) "
            f"FROM read_parquet([{listing}], union_by_name = true)"
        )
    return queries


def run_floor(
    layout: Layout,
    files: Mapping[str, Sequence[Path]],
    tag: str,
    limits: Limits = NO_LIMITS,
    name: str = "floor",
) -> Measurement:
    """The read-once floor, in a child process like the scenarios it is compared with."""
    spec = layout.root / f"{name}-queries.json"
    spec.write_text(json.dumps(floor_queries(files)), "utf-8")
    log = layout.log(f"{name}-{tag}")
    m = measure([sys.executable, "-c", FLOOR_SCRIPT, str(spec)], log, limits=limits)
    _require_success(name, m, log)
    lines = log.read_text("utf-8").strip().splitlines()
    result = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    m.stages = {"query": round(result["seconds"], 4)}
    m.extra = {"logs": result["logs"]}
    return m


def _run_command(
    verb: str, raw: Path, out: Path, rules: Path | None, dates: Sequence[str]
) -> list[str]:
    command = [sys.executable, "-m", "pipelines", verb, *dates, "--raw", str(raw)]
    command += ["--out", str(out), "--force"]
    return command + (["--rules", str(rules)] if rules else [])


def manifest_stages(
    out: Path, dates: Sequence[dt.date], strict: bool = True
) -> tuple[dict[str, float], list[dict]]:
    """Stage seconds summed over the dates' manifests, and each date's own (with its status).

    `strict=False` skips dates without a manifest: how far a failed backfill got, and how long
    its days took, is worth reporting too.
    """
    totals: dict[str, float] = {}
    per_day = []
    for day in dates:
        path = manifest_path(out, day)
        if not path.is_file():
            if not strict:
                continue
            raise BenchError(f"bench: no manifest {path}: the run did not publish {day}")
        manifest = json.loads(path.read_text("utf-8"))
        timings = {k: float(v) for k, v in manifest.get("timings_seconds", {}).items()}
        for stage, seconds in timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
        per_day.append(
            {
                "date": day.isoformat(),
                "status": manifest.get("status"),
                **timings,
                "execution": manifest.get("execution"),
            }
        )
    return {k: round(v, 4) for k, v in totals.items()}, per_day


def run_scenario(
    name: str,
    verb_args: list[str],
    layout: Layout,
    out: Path,
    rules: Path | None,
    dates: Sequence[dt.date],
    tag: str,
    limits: Limits = NO_LIMITS,
) -> Measurement:
    """One `expscore run|backfill` in a child process, with its manifests' stage times.

    Raises `ScenarioFailed` when the run fails or passes a limit."""
    command = _run_command(verb_args[0], layout.raw, out, rules, verb_args[1:])
    log = layout.log(f"{name}-{tag}")
    m = measure(command, log, env={"EXPSCORE_LOG_FORMAT": "plain"}, limits=limits)
    if not m.ok:
        m.extra = {"per_day_published": manifest_stages(out, dates, strict=False)[1]}
        raise ScenarioFailed(m, failure_text(m, log))
    m.stages, per_day = manifest_stages(out, dates)
    m.extra = {"statuses": sorted({d["status"] for d in per_day}), "per_day": per_day}
    return m


def copy_output(source: Path, target: Path) -> None:
    """A private copy of an output folder for one run to change.

    Files of published partitions (`<table>/dt=D/`) are hard-linked: a run never writes into a
    published partition, it writes a new one aside and swaps it in
    (pipelines/nightly/publish.py), so
    the source keeps its files. Everything else (manifests, the lock, any state a run keeps) is
    copied, since a run may change it in place. At M the backfill's output is ~20 GB, which a
    plain copy would duplicate for every repeat.
    """

    def link_or_copy(src: str, dst: str) -> str:
        parts = Path(src).relative_to(source).parts
        if len(parts) >= 3 and parts[0] in PUBLISHED_TABLES and parts[1].startswith("dt="):
            with contextlib.suppress(OSError):
                os.link(src, dst)
                return dst
        return shutil.copy2(src, dst)

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=link_or_copy)


def seed_from_scratch(source: Path, target: Path, previous: dt.date) -> None:
    """A fresh output folder with only the previous day's published tables.

    By the spec a day depends on the raw window and on D-1's labels and weights (hysteresis, the
    weight clamp), and its band gate on D-1's scores; everything else a run may keep under its
    output folder is deliberately left out, so the run must rebuild it.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for table in TABLE_SCHEMAS:
        partition = partition_dir(source, table, previous)
        if partition.is_dir():
            shutil.copytree(partition, target / table / partition.name, copy_function=shutil.copy2)
    # the manifest is what makes those tables a published day (pipelines/nightly/run.py)
    manifest = manifest_path(source, previous)
    if manifest.is_file():
        manifest_path(target, previous).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(manifest, manifest_path(target, previous))


def run_peer(
    layout: Layout,
    files: Mapping[str, Mapping[str, Sequence[str]]],
    day: dt.date,
    rules: Path | None,
    tag: str,
    limits: Limits = NO_LIMITS,
) -> Measurement:
    """The SQL peer (`pipelines.devtools.bench_peer`) for `day`, in a child process like the runs.

    Its stages are its own steps (read, facts, score, write). Raises `ScenarioFailed` when it
    fails or passes a limit."""
    spec = layout.root / "peer-spec.json"
    out = layout.out("peer")
    spec.write_text(
        json.dumps(
            {
                "date": day.isoformat(),
                "rules": None if rules is None else str(rules),
                "files": files,
                "out": str(out),
                # DuckDB's own default is 80% of the machine; below the harness's guard, it
                # spills instead of being killed
                "memory_limit_bytes": None
                if limits.max_rss_bytes is None
                else int(PEER_MEMORY_SHARE * limits.max_rss_bytes),
            }
        ),
        "utf-8",
    )
    log = layout.log(f"peer-{tag}")
    m = measure(
        [sys.executable, "-m", "pipelines.devtools.bench_peer", str(spec)], log, limits=limits
    )
    if not m.ok:
        raise ScenarioFailed(m, failure_text(m, log))
    lines = log.read_text("utf-8").strip().splitlines()
    result = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    m.stages = result["steps"]
    m.extra = {"rows": result["rows"], "query_s": result["seconds"]}
    return m


PEER_MEMORY_SHARE = 0.7  # of the --max-rss guard, the peer's DuckDB memory_limit
