"""What the harness measures: the benchmark sizes (scales), the scenarios that can be
skipped, and issue 19's targets with the runs each figure comes from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2
START = dt.date(2026, 1, 1)
DEFAULT_SEED = 7
DEFAULT_WINDOW_DAYS = 30  # the shipped rules' window; other windows get a rules file of their own
SCENARIOS = ("floor", "floor_day", "backfill", "nightly", "scratch", "ray", "peer")
RUN_SCENARIOS = ("backfill", "nightly", "scratch")  # the expscore runs whose outputs are kept
SKIPPABLE = ("backfill", "nightly", "scratch", "ray", "peer", "window")


@dataclass(frozen=True)
class Scale:
    """One benchmark size: the synthetic marketplace and the window the runs score."""

    name: str
    shops: int
    orders_per_day: int
    window_days: int = DEFAULT_WINDOW_DAYS
    hidden: bool = False  # a test size, not offered in --help
    note: str = ""

    @property
    def days(self) -> int:
        """Days generated: the backfilled window plus the one new day of the nightly run."""
        return self.window_days + 1


SCALES: dict[str, Scale] = {
    "XS": Scale("XS", shops=30, orders_per_day=300, window_days=2, hidden=True, note="tests only"),
    "S": Scale("S", shops=200, orders_per_day=2_000, note="the `make bench` default"),
    "mid": Scale(
        "mid",
        shops=20_000,
        orders_per_day=100_000,
        note="issue 19's mid scale, where expscore is measured against the SQL peer",
    ),
    "M": Scale(
        "M",
        shops=200_000,
        orders_per_day=1_000_000,
        note="the generator derives ~1.05M items from 200k shops (the issue says 2M)",
    ),
    "L": Scale(
        "L",
        shops=2_000_000,
        orders_per_day=10_000_000,
        note="~10M items; generation takes most of an hour, ~54 GB of logs",
    ),
}


@dataclass(frozen=True)
class Target:
    """One figure of the issue's acceptance list: `metric` compared with `limit`.

    `scenarios` are the runs the figure comes from: if one of them failed (or passed a limit),
    the target failed; if one was not run, the target was not measured.
    """

    scale: str
    id: str
    description: str
    metric: str  # a key of `target_metrics`
    limit: float | bool
    unit: str
    scenarios: tuple[str, ...]
    at_most: bool = True  # value <= limit passes (else value >= limit; booleans must be equal)


# Issue 19's targets ("Targets (the benchmark harness, medians of 3, 2 cores; not tests)"). The
# issue's last item, projecting L on 8 and 32 workers from measured shard costs, is on paper
# (docs/operators.md), not a harness figure.
TARGETS: tuple[Target, ...] = (
    Target("M", "m_nightly_wall", "nightly run", "nightly_wall_s", 10.0, "s", ("nightly",)),
    Target(
        "M", "m_nightly_rss", "nightly peak RSS", "nightly_peak_rss_gib", 3.0, "GiB", ("nightly",)
    ),
    Target("M", "m_scratch_wall", "from-scratch run", "scratch_wall_s", 60.0, "s", ("scratch",)),
    Target(
        "M",
        "m_scratch_rss",
        "from-scratch peak RSS",
        "scratch_peak_rss_gib",
        8.0,
        "GiB",
        ("scratch",),
    ),
    Target("M", "m_backfill_wall", "30-day backfill", "backfill_wall_s", 300.0, "s", ("backfill",)),
    Target(
        "M",
        "m_state_disk",
        "window state on disk after the night",
        "nightly_state_gb",
        4.0,
        "GB",
        ("nightly",),
    ),
    Target(
        "M",
        "m_nightly_identical",
        "nightly and from-scratch tables identical",
        "nightly_identical",
        True,
        "",
        ("nightly", "scratch"),
        at_most=False,
    ),
    Target(
        "M",
        "m_window60_ratio",
        "nightly with window_days 60 / with 30",
        "window_60_to_30",
        1.3,
        "x",
        ("window30_nightly", "window60_nightly"),
    ),
    Target(
        "M", "m_ray_ratio", "nightly on Ray / local", "ray_to_local", 1.3, "x", ("ray", "nightly")
    ),
    Target(
        "M",
        "m_ray_identical",
        "Ray and local nightly tables identical",
        "ray_identical",
        True,
        "",
        ("ray", "nightly"),
        at_most=False,
    ),
    Target(
        "mid",
        "mid_nightly_vs_peer",
        "nightly / SQL peer",
        "nightly_to_peer",
        round(1 / 6, 4),
        "x",
        ("nightly", "peer"),
    ),
    Target(
        "mid",
        "mid_scratch_vs_peer",
        "from scratch / SQL peer",
        "scratch_to_peer",
        1.0,
        "x",
        ("scratch", "peer"),
    ),
)
