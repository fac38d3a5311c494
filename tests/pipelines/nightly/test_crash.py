"""Crash safety and concurrency: SIGKILL during publish, the output lock, stale leftovers.

The kill lands wherever the scheduler puts it; the assertions hold at every possible point, so
the tests are deterministic in outcome even though the timing is not.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.layout import partition_dir
from pipelines.nightly.lock import LockedError, output_lock
from pipelines.nightly.run import clean_stale
from tests.pipelines.cli_runner import cli
from tests.pipelines.ingest.test_bad_input import D, steady_raw

ROOT = Path(__file__).resolve().parents[3]

PUBLISHER = textwrap.dedent(
    """
    import datetime as dt, sys
    from pathlib import Path
    import polars as pl
    from pipelines.nightly.publish import publish_partition
    out = Path(sys.argv[1])
    n = 300_000
    versions = [pl.DataFrame({"version": [v] * n, "x": list(range(n))}) for v in (1, 2)]
    i = 0
    print("ready", flush=True)
    while True:
        publish_partition(out, "t", dt.date(2026, 3, 1), versions[i % 2])
        i += 1
    """
)


def test_sigkill_during_publish_leaves_old_or_new_partition(tmp_path: Path) -> None:
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    target = partition_dir(tmp_path / "out", "t", dt.date(2026, 3, 1))
    for delay in (0.05, 0.13, 0.29, 0.41, 0.67, 0.83):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "out")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not target.exists():
            continue  # killed before the very first publish finished: nothing was published
        files = sorted(target.iterdir())
        assert [f.name for f in files] == ["part-0.parquet"]
        table = pl.read_parquet(files[0])
        assert table.height == 300_000
        assert table["version"].n_unique() == 1  # one version, never a mix


def test_killed_run_is_cleaned_and_rerun_publishes(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    steady_raw(raw)
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "--raw",
        str(raw),
        "--out",
        str(out),
        "--date",
        str(D),
    ]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    # leftovers of a run killed mid-publish
    stale = out / "shop_scores" / f".staging-dt={D}-0123456789ab"
    stale.mkdir()
    (stale / "part-0.parquet").write_bytes(b"half")
    (out / "manifests" / f".dt={D}.json.0123456789ab.tmp").write_text("{")
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert not list((out / "manifests").glob(".*.tmp"))
    assert [p.name for p in (out / "shop_scores").iterdir()] == [f"dt={D}"]


def test_second_run_refuses_while_first_holds_the_lock(monkeypatch, capsys, tmp_path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    steady_raw(raw)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            from pipelines.nightly.lock import output_lock
            with output_lock(Path({str(out)!r})):
                print("locked", flush=True)
                time.sleep(60)
            """
        )],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"locked"
        code, _, err = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))
        assert code == 4
        assert "another expscore run holds the output lock (pid" in err
        assert not (out / "shop_scores").exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the next run goes ahead
    code, _, _ = cli(monkeypatch, capsys, "run", "--raw", str(raw), "--out", str(out))
    assert code == 0


def test_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    with output_lock(tmp_path), pytest.raises(LockedError), output_lock(tmp_path):
        pass


def test_clean_stale_on_missing_output_is_harmless(tmp_path: Path) -> None:
    clean_stale(tmp_path / "never-written")
    # cleaning must not create what a run never wrote
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_dies_mid_publish_leaves_the_date_unpublished(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    """Disk full after two of seven tables: no mix of two runs stands as the published date."""
    import pipelines.nightly.run as run_module
    from pipelines.analyst.query import run_query
    from pipelines.errors import InputError
    from pipelines.published import published_dates

    raw, out = tmp_path / "raw", tmp_path / "out"
    steady_raw(raw)
    args = ["run", "--raw", str(raw), "--out", str(out), "--date", str(D), "--force"]
    assert cli(monkeypatch, capsys, *args)[0] == 0
    real, written = run_module.publish_partition, []

    def disk_full_after_two(*a, **k):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(run_module, "publish_partition", disk_full_after_two)
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code != 0 and "No space left on device" in err
    assert not (out / "manifests" / f"dt={D}.json").exists()
    assert published_dates(out) == []  # not published: its tables may come from two runs
    with pytest.raises(InputError, match="no published tables"):
        run_query(out, "SELECT count(*) FROM shop_scores")
    # the next date refuses to build on it, and says what to do
    later = ["run", "--raw", str(raw), "--out", str(out), "--force"]
    code, _, err = cli(monkeypatch, capsys, *later, "--date", str(D + dt.timedelta(days=1)))
    assert code == 2 and "did not finish publishing" in err and f"--date {D}" in err
    monkeypatch.setattr(run_module, "publish_partition", real)
    assert cli(monkeypatch, capsys, *args)[0] == 0  # a rerun publishes the date whole
    assert published_dates(out) == [D]


def test_ctrl_c_during_a_night_exits_130_and_publishes_nothing(tmp_path: Path) -> None:
    """SIGINT once the night is under way (its exchange folder exists): exit 130, one line,
    no date published, and the next run works."""
    from pipelines.published import published_dates

    out = tmp_path / "out"
    sample = ROOT / "data_samples" / "raw"
    command = [sys.executable, "-m", "pipelines", "run", "--raw", str(sample), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    exchange = out / ".state" / "exchange"
    deadline = time.monotonic() + 60
    while not (exchange.is_dir() and any(exchange.iterdir())) and time.monotonic() < deadline:
        assert child.poll() is None, "the run ended before its night began"
        time.sleep(0.005)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "expscore: interrupted"
    assert published_dates(out) == []
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert len(published_dates(out)) == 1
