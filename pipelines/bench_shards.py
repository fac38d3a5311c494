"""`expscore bench-shards`: the facts stage under each executor and shard count (issue 6).

The nightly run's facts stage is the part an executor changes: bucket the window into shop shards
(driver, DuckDB), sum each shard (one task per shard, on the executor), gather (driver). This
harness times those three steps on a window state that a real run left under `--out/.state`,
for every executor and shard count asked for, repeated, and reports medians. The state is opened
read-only, so the output folder is not changed.

Per configuration it records wall seconds of each step, the slowest shard task, and the peak
resident memory of the whole process tree (the harness, its worker processes and, for a local
Ray, Ray's own processes), sampled every 0.2 s. The executor is started once per configuration
before its repeats (`startup_seconds`): a long-lived cluster pays that once, not nightly. Every
configuration's facts must equal the first one's; the result says whether they did.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import duckdb
import polars as pl
import typer

from pipelines.bench import GIB
from pipelines.errors import InputError
from pipelines.executors import EXECUTORS, ExecutorOptions, open_executor
from pipelines.run import load_rules
from pipelines.shards import (
    MAX_SHARDS,
    bucket_window,
    gather,
    map_shards,
    orders_source,
    shard_exchange,
)
from pipelines.state import limit_for_reading, open_state_read_only, state_path
from scoring.daily import rules_window

SAMPLE_SECONDS = 0.2


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every process descended from it (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree)


@contextmanager
def peak_tree_rss() -> Iterator[list[int]]:
    """Samples this process tree's RSS while the block runs; the list holds the peak after."""
    peak = [_tree_rss(os.getpid())]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], _tree_rss(os.getpid()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _latest_state_date(con: duckdb.DuckDBPyConnection) -> dt.date:
    latest = con.sql("SELECT max(dt) FROM partitions").fetchall()[0][0]
    if latest is None:
        raise InputError("bench-shards: the window state holds no partition; run expscore first")
    return latest


def bench_shards(
    out: Path,
    run_date: dt.date | None,
    executors: list[str],
    shard_counts: list[int],
    repeats: int,
    workers: int | None,
    echo: Any,
) -> dict[str, Any]:
    """Time bucket, sum and gather for every (shards, executor); see the module docstring."""
    path = state_path(out)
    if not path.exists():
        raise InputError(f"bench-shards: no window state at {path}; run expscore on --out first")
    con = open_state_read_only(path)
    limit_for_reading(con)  # as a run sets it once its sync is done
    run_date = run_date or _latest_state_date(con)
    window = rules_window(load_rules(None), run_date)
    base = str(out / ".state" / "bench-shards")
    reference: tuple[pl.DataFrame, pl.DataFrame] | None = None
    identical = True
    configurations = []
    try:
        for shards in shard_counts:
            for kind in executors:
                options = ExecutorOptions(kind, workers if kind == "processes" else None)
                runs = []
                clock = time.perf_counter()
                with open_executor(options, shards) as executor:
                    startup = time.perf_counter() - clock
                    for _ in range(repeats):
                        with peak_tree_rss() as peak, shard_exchange(base) as exchange:
                            clock = time.perf_counter()
                            state = orders_source(con, options)
                            bucket_window(con, window, shards, exchange, orders=state is None)
                            bucketed = time.perf_counter()
                            done = map_shards(executor, exchange, window, shards, state)
                            summed = time.perf_counter()
                            facts = gather(exchange, window, shards)
                            activity, items = facts.activity.collect(), facts.items.collect()
                            gathered = time.perf_counter()
                        items = items.sort("item_id")
                        if reference is None:
                            reference = (activity, items)
                        identical &= activity.equals(reference[0]) and items.equals(reference[1])
                        runs.append(
                            {
                                "bucket_seconds": bucketed - clock,
                                "sum_seconds": summed - bucketed,
                                "gather_seconds": gathered - summed,
                                "facts_seconds": gathered - clock,
                                "slowest_shard_seconds": max(d.seconds for d in done),
                                "peak_tree_rss_bytes": peak[0],
                            }
                        )
                medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                row = {"executor": kind, "shards": shards, "startup_seconds": startup, **medians}
                configurations.append({**row, "runs": runs})
                echo(
                    f"  B={shards:<3} {kind:<9} facts {medians['facts_seconds']:6.1f} s "
                    f"(bucket {medians['bucket_seconds']:.1f}, sum {medians['sum_seconds']:.1f}, "
                    f"gather {medians['gather_seconds']:.1f}), "
                    f"peak {medians['peak_tree_rss_bytes'] / GIB:.2f} GiB"
                )
    finally:
        con.close()
        shutil.rmtree(base, ignore_errors=True)
    return {
        "run_date": run_date.isoformat(),
        "state": str(path),
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "orders_v": None if reference is None else int(reference[0]["valid_orders"].sum()),
        "shops": None if reference is None else reference[0].height,
        "identical_facts": identical,
        "configurations": configurations,
    }


def _int_list(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: use comma-separated whole numbers") from exc
    if any(not 1 <= n <= MAX_SHARDS for n in numbers):
        raise typer.BadParameter(f"{value!r}: shard counts are between 1 and {MAX_SHARDS}")
    return numbers


def _executor_list(value: str) -> list[str]:
    kinds = [part.strip() for part in value.split(",")]
    unknown = [k for k in kinds if k not in EXECUTORS]
    if unknown:
        raise typer.BadParameter(f"{', '.join(unknown)}: use {', '.join(EXECUTORS)}")
    return kinds


def command(
    out: Annotated[Path, typer.Option("--out", help="An output folder with a window state.")],
    date: Annotated[
        str | None,
        typer.Option("--date", help="Run date to score (default: the state's latest partition)."),
    ] = None,
    executors: Annotated[
        str, typer.Option("--executors", help="Comma-separated executors to compare.")
    ] = "local,processes,ray",
    shards: Annotated[
        str, typer.Option("--shards", help="Comma-separated shard counts (B) to compare.")
    ] = "1,2,4,8,16",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Runs per configuration.")] = 3,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes of the process pool.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Where the JSON result goes.")
    ] = None,
) -> None:
    """Time the facts stage (bucket, sum per shard, gather) per executor and shard count."""
    from pipelines.options import parse_date

    result = bench_shards(
        out,
        parse_date(date, "--date"),
        _executor_list(executors),
        _int_list(shards),
        repeats,
        workers,
        lambda message: typer.echo(message, err=True),
    )
    text = json.dumps(result, indent=2) + "\n"
    if json_path is not None:
        json_path.write_text(text, "utf-8")
    typer.echo(text if json_path is None else f"JSON: {json_path}")


def register(app: typer.Typer) -> None:
    app.command("bench-shards")(command)
