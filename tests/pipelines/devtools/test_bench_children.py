"""The harness's process watch (bench/children.py) and machine readings (bench/machine.py) on
Linux /proc, and where /proc is missing."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipelines.devtools.bench import children, machine


@pytest.fixture
def shell_with_a_child():
    """A shell waiting on a sleeping child: a process tree of two, both idle."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    deadline = time.monotonic() + 10
    while not any(
        p.read_text().split() for p in Path(f"/proc/{shell.pid}/task").glob("*/children")
    ):
        assert time.monotonic() < deadline, "the shell did not start its child"
        time.sleep(0.05)
    yield shell
    subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
    shell.kill()
    shell.wait()


def test_the_tree_rss_counts_the_descendants(shell_with_a_child) -> None:
    own = children._current_rss(shell_with_a_child.pid)
    assert own is not None and own > 0
    assert children._tree_rss(shell_with_a_child.pid) > own


def test_a_process_that_is_gone_has_no_rss() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert children._current_rss(gone.pid) is None
    assert children._tree_rss(gone.pid) is None


def test_the_watch_under_its_limits_records_the_peak_and_kills_nothing(shell_with_a_child) -> None:
    done, seen = threading.Event(), children.Watch()
    limits = children.Limits(max_rss_bytes=1 << 40, timeout_s=None)
    threading.Timer(3 * children.WATCH_INTERVAL_S, done.set).start()
    children._watch(shell_with_a_child.pid, limits, time.perf_counter(), done, seen)
    assert seen.killed is None
    assert seen.peak_tree_rss is not None and seen.peak_tree_rss > 0
    assert shell_with_a_child.poll() is None  # still running


def test_without_proc_or_a_load_average_the_machine_readings_are_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_load() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(machine, "Path", lambda _: tmp_path / "absent")
    monkeypatch.setattr(os, "getloadavg", no_load)
    assert machine._cpu_jiffies() is None
    assert machine.machine_load() == {
        "load_average": None,
        "memory_available_bytes": None,
        "cpus_busy": None,
    }
