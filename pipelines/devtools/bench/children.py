"""Running one child process and measuring it alone: wall and CPU time, its own peak RSS
and its process tree's, killed past a memory or time limit; and why a child failed, in one line."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.devtools.bench.machine import machine_memory
from pipelines.devtools.bench.scales import GIB
from pipelines.errors import ExpscoreError


class BenchError(ExpscoreError):
    """A benchmarked command failed: the harness cannot report figures for it. Exit 1."""


@dataclass
class Measurement:
    """One child process: what it cost, and the stage seconds its manifests reported."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    exit_code: int
    killed: str | None = None  # "timeout" or "rss_limit" when the harness stopped it
    # the largest summed RSS of the child and its descendants, sampled every WATCH_INTERVAL_S
    # (Linux): what a run with worker processes (Ray, a process pool) holds, which
    # `peak_rss_bytes` (the child's own, exact) does not see; shared pages count in each process
    peak_tree_rss_bytes: int | None = None
    stages: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


@dataclass(frozen=True)
class Limits:
    """Guards for each child process. A run past one is killed and reported as failed, so a
    scale the code cannot handle yet ends in a report instead of a machine swapping for hours
    (or a 24 GiB target "met" by the kernel's OOM killer)."""

    max_rss_bytes: int | None = None
    timeout_s: float | None = None


NO_LIMITS = Limits()  # the default of the functions that take limits: none


WATCH_INTERVAL_S = 0.2


def default_limits(max_rss_gib: float | None, timeout_s: float | None) -> Limits:
    """The guards of `expscore bench`: `--max-rss-gib` (default 90% of the machine's memory, none
    where the platform does not say it) and `--timeout`."""
    memory = machine_memory()
    max_rss = max_rss_gib * GIB if max_rss_gib else (0.9 * memory if memory else None)
    return Limits(None if max_rss is None else int(max_rss), timeout_s)


def _current_rss(pid: int) -> int | None:
    """Resident set size of a live process now (Linux /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _tree_rss(pid: int) -> int | None:
    """Summed RSS of a live process and all its descendants now (Linux /proc; None elsewhere)."""
    total, seen, stack = 0, set(), [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        rss = _current_rss(current)
        if rss is None:
            if current == pid:
                return None
            continue
        total += rss
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                stack.extend(int(child) for child in children.read_text().split())
    return total


@dataclass
class Watch:
    """What the watcher thread found: why it killed the child, the largest tree RSS it saw."""

    killed: str | None = None
    peak_tree_rss: int | None = None


def _watch(pid: int, limits: Limits, started: float, done: threading.Event, seen: Watch) -> None:
    """Sample the RSS of `pid`'s process tree and kill the tree once it passes a limit. Runs
    beside the blocking `wait4`, so the wall clock of a child is not rounded up to a polling
    step; `done` is set as soon as the child is reaped, which keeps the kill from reaching a
    recycled pid. The memory guard counts the descendants too: with `--executor ray` or a
    process pool the shard tasks run in other processes."""
    while not done.wait(WATCH_INTERVAL_S):
        reason = None
        rss = _tree_rss(pid)
        if rss is not None:
            seen.peak_tree_rss = max(seen.peak_tree_rss or 0, rss)
        if limits.timeout_s is not None and time.perf_counter() - started > limits.timeout_s:
            reason = "timeout"
        elif limits.max_rss_bytes is not None and rss is not None and rss > limits.max_rss_bytes:
            reason = "rss_limit"
        if reason and not done.is_set():
            seen.killed = reason
            _kill_group(pid)
            return


def _kill_group(pid: int) -> None:
    """SIGKILL the child's process group (the child leads it: its workers go with it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _maxrss_bytes(maxrss: int) -> int:
    """`ru_maxrss` is KiB on Linux and bytes on macOS."""
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def measure(
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
) -> Measurement:
    """Run `command` to completion (or to a limit) and measure it alone.

    `os.wait4` reaps the child and returns its own resource usage, so the peak RSS is the child's
    (the harness process, which may hold generated data, does not count) and CPU time needs no
    before/after bookkeeping (it includes the descendants the child waited for, not Ray's
    workers). Output goes to `log`, not a pipe, so a chatty child cannot block.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(command),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
            process_group=0,  # its own group, so that a kill takes its worker processes too
        )
        done, seen = threading.Event(), Watch()
        watcher = threading.Thread(
            target=_watch, args=(child.pid, limits, started, done, seen), daemon=True
        )
        watcher.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # Ctrl-C reaches the harness only: take the child down with it
            done.set()
            _kill_group(child.pid)
            child.wait()
            raise
        wall = time.perf_counter() - started
        done.set()
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    own = _maxrss_bytes(usage.ru_maxrss)
    return Measurement(
        wall_s=round(wall, 4),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
        peak_rss_bytes=own,
        exit_code=child.returncode,
        killed=seen.killed,
        peak_tree_rss_bytes=None if seen.peak_tree_rss is None else max(own, seen.peak_tree_rss),
    )


def failure_text(m: Measurement, log: Path) -> str:
    """Why a child failed, in one line: the limit it passed, or its exit code and last words."""
    if m.killed == "timeout":
        return f"killed after the --timeout of {m.wall_s:.0f} s (log {log})"
    if m.killed == "rss_limit":
        return f"killed past the --max-rss limit at {m.peak_rss_bytes / GIB:.1f} GiB (log {log})"
    tail = log.read_text("utf-8", errors="replace").strip().splitlines()[-3:]
    if m.exit_code < 0:  # killed by a signal the harness did not send
        name = signal.Signals(-m.exit_code).name
        cause = " (most likely the kernel's OOM killer)" if name == "SIGKILL" else ""
        return f"killed by {name}{cause} at {m.peak_rss_bytes / GIB:.1f} GiB (log {log})"
    return f"exit code {m.exit_code} (log {log}): " + " | ".join(tail)


def _require_success(name: str, m: Measurement, log: Path) -> None:
    if not m.ok:
        raise BenchError(f"bench: {name} failed: {failure_text(m, log)}")


class ScenarioFailed(Exception):
    """A benchmarked run failed or passed a limit: recorded, and what depends on it is skipped."""

    def __init__(self, measurement: Measurement, reason: str) -> None:
        super().__init__(reason)
        self.measurement = measurement
        self.reason = reason
