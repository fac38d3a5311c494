"""Where files live (pipelines/layout.py): partition names both ways, manifests, the state."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines import layout

D = dt.date(2026, 2, 28)


def test_paths_of_a_date() -> None:
    out = Path("/o")
    assert layout.partition_dir(out, "shop_scores", D) == Path("/o/shop_scores/dt=2026-02-28")
    assert layout.raw_partition(Path("/r"), "orders", D) == Path("/r/orders/dt=2026-02-28")
    assert layout.partition_path("item_scores", D) == "item_scores/dt=2026-02-28"
    assert layout.manifest_path(out, D) == Path("/o/manifests/dt=2026-02-28.json")
    assert layout.held_manifest_path(out, D) == Path("/o/manifests/dt=2026-02-28.held.json")
    assert layout.lock_path(out) == Path("/o/.expscore.lock")
    assert layout.default_state_location(out) == "/o/.state"
    assert layout.default_exchange(out) == Path("/o/.state/exchange")


def test_a_partition_folder_name_gives_its_date_and_another_name_is_refused() -> None:
    assert layout.partition_date(layout.partition_name(D)) == D
    with pytest.raises(ValueError, match=r"'\.staging-dt=2026-02-28' is not a partition folder"):
        layout.partition_date(".staging-dt=2026-02-28")
