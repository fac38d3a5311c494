"""The machine the figures were measured on (CPUs, memory, packages, the git commit), and how
busy it was at the start and at the end of a benchmark."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any


def machine_memory() -> int | None:
    """The machine's physical memory in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_bytes": machine_memory(),
        **machine_load(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: importlib.metadata.version(name) for name in ("polars", "duckdb", "pyarrow")
        },
        "git": _git_state(),
    }


def machine_load() -> dict[str, Any]:
    """How busy the machine is now: other work on it skews every figure, so the result records
    this at the start and at the end of a benchmark (see `busy_warning`)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    available = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo.read_text(), re.MULTILINE)
        available = int(match.group(1)) * 1024 if match else None
    return {"load_average": load, "memory_available_bytes": available, "cpus_busy": cpus_busy()}


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, from /proc/stat (Linux only)."""
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None
    fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user .. steal; guest time is already counted in user
    return total - idle, total


def cpus_busy(seconds: float = 1.0) -> float | None:
    """How many CPUs the machine keeps busy over the next `seconds`, whoever runs on them.

    The end of a benchmark needs this rather than the load average: the one-minute average
    still counts the benchmark's own last runs, so it reads "busy" on an otherwise idle machine.
    """
    before = _cpu_jiffies()
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_jiffies()
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return round(share * (os.cpu_count() or 1), 2)


def _git_state() -> dict[str, Any] | None:
    root = Path(__file__).resolve().parents[2]  # pipelines/, in the checkout when run from one
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}
