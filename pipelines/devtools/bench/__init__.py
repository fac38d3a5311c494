"""`expscore bench`: time what `expscore run` does against the floor of reading its input once.

The harness treats the pipeline as a black box: every scenario is the real command line in a
child process (`python -m pipelines run|backfill ...`), so the figures are what a scheduler would
see, and they stay meaningful whatever the run does inside (a nightly run moves the window state
under `--out/.state`, a from-scratch run rebuilds it). Per child process it records

- wall time (a monotonic clock around the child),
- CPU time and peak RSS (`os.wait4` on the child's pid: that child alone, not the harness),
- per-stage seconds from the run manifests (`timings_seconds`, whatever stages they name),
- rows per second: rows of the raw window (counted from the Parquet footers, so the figure does
  not depend on what a run chooses to re-read) divided by the wall or stage seconds.

Scenarios, each repeated and reported as medians (issue 19's targets, `TARGETS`, are checked
against them):

1. `floor`    one DuckDB query per log reading, once, every spec column of the nightly window's
              raw files (`count(*)` and `sum(hash(...))`, so the values are decoded, not only the
              footers): the time no implementation of the run can beat; `floor_day` reads the
              new day's files only, the floor of a nightly run that keeps state for the rest;
2. `backfill` a full backfill of the window's dates into an empty output folder;
3. `nightly`  the run of the day after the window on top of (a copy of) that backfill's output;
              the size of its window state on disk (`<out>/.state`) after the night is recorded;
4. `scratch`  the same date from scratch: a fresh output folder holding only the previous day's
              published tables (the labels and weights a day carries over by the spec, and the
              scores its band gate compares with), nothing else a run may have kept;
5. `ray`      the nightly run again on another copy of the backfill's output, its shard tasks
              on a local Ray (`--executor ray --ray-address local`); its tables must be those
              of `nightly`;
6. `peer`     a plain DuckDB SQL recompute of the nightly date from the raw logs of its window
              (`pipelines/devtools/bench_peer.py`: the spec's definitions, no state, no
              expscore code);
              its tables are compared with what `nightly` published, and the agreement goes
              into the JSON;
7. `window<W>_prep`, `window<W>_nightly` for each W of `--window-days` (default the scale's
              window and twice it): the nightly run of one date (the same date for every W,
              the day after the longest window's data) under `window_days = W`, on the output
              of a short backfill of the dates before it (a from-scratch first date, then
              `WINDOW_WARMUP_NIGHTS` nights, so that the state has the shape nights give it);
              each W's figures are divided by those of the smallest W.

`nightly` and `scratch` must publish identical tables; the harness compares every table of that
date and records the outcome. Runs pass `--force`: a quality gate tripped by synthetic data would
otherwise stop a backfill, while the work done is the same either way (the gates are evaluated and
the manifest's status says "forced"). `--skip` leaves out any of backfill, nightly, scratch, ray,
peer and window (what depends on a skipped run is skipped too); the JSON says what was skipped
and why, and a target whose runs were skipped is "not measured".

Each child is guarded (`--max-rss-gib`, default 90% of the machine's memory, and `--timeout`):
one that passes a limit is killed and reported as failed, with how far it got, instead of
driving a shared machine into swapping; what depends on it (nightly and from-scratch need the
backfill) is reported as skipped, and the targets it feeds fail.

Generated data is kept under `--work` and reused when the same scale and seed were generated
before with at least the days needed (generation of M takes minutes, L most of an hour); the
generator is deterministic day by day, so the first 31 of 61 generated days are the 31 days a
31-day generation writes. The outputs of `ray` and of the window runs are deleted once measured
(their sizes stay in the JSON): at M each holds a window state of several GB.

The package: `scales` (the sizes, scenarios and targets), `children` (running and measuring one
child process), `data` (generated data, folders, disk), `runs` (the floor, the expscore runs, the
peer), `compare` (the tables of two runs, and of the peer), `summary` (medians and the targets'
verdicts), `machine` (what the figures were measured on), `windows` (the window-length runs),
`harness` (`run_bench`: the whole sequence) and `report` (the JSON file and the short table). The
command itself is `pipelines/cli/bench.py`.
"""

from __future__ import annotations

from pipelines.devtools.bench.children import (
    BenchError,
    Limits,
    Measurement,
    ScenarioFailed,
    default_limits,
    failure_text,
    measure,
)
from pipelines.devtools.bench.compare import PEER_KEYS, compare_outputs, compare_peer
from pipelines.devtools.bench.data import (
    DISK_MARGIN,
    RAW_BYTES_PER_ORDER,
    RUNS_PEAK_BYTES_PER_ORDER,
    Layout,
    disk_need,
    ensure_data,
    generation_params,
    layout_for,
    raw_partition_files,
    rules_file,
    state_bytes,
    window_dates,
)
from pipelines.devtools.bench.harness import full_window_shards, run_bench
from pipelines.devtools.bench.machine import cpus_busy
from pipelines.devtools.bench.report import busy_warning, format_table, write_json
from pipelines.devtools.bench.runs import (
    copy_output,
    floor_queries,
    manifest_stages,
    run_floor,
    seed_from_scratch,
)
from pipelines.devtools.bench.scales import (
    DEFAULT_SEED,
    DEFAULT_WINDOW_DAYS,
    GIB,
    SCALES,
    SCENARIOS,
    SKIPPABLE,
    START,
    Scale,
)
from pipelines.devtools.bench.summary import evaluate_targets
from pipelines.devtools.bench.windows import WINDOW_WARMUP_NIGHTS

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_WINDOW_DAYS",
    "DISK_MARGIN",
    "GIB",
    "PEER_KEYS",
    "RAW_BYTES_PER_ORDER",
    "RUNS_PEAK_BYTES_PER_ORDER",
    "SCALES",
    "SCENARIOS",
    "SKIPPABLE",
    "START",
    "WINDOW_WARMUP_NIGHTS",
    "BenchError",
    "Layout",
    "Limits",
    "Measurement",
    "Scale",
    "ScenarioFailed",
    "busy_warning",
    "compare_outputs",
    "compare_peer",
    "copy_output",
    "cpus_busy",
    "default_limits",
    "disk_need",
    "ensure_data",
    "evaluate_targets",
    "failure_text",
    "floor_queries",
    "format_table",
    "full_window_shards",
    "generation_params",
    "layout_for",
    "manifest_stages",
    "measure",
    "raw_partition_files",
    "rules_file",
    "run_bench",
    "run_floor",
    "seed_from_scratch",
    "state_bytes",
    "window_dates",
    "write_json",
]
