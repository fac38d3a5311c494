"""The generator refuses to write values the raw contract does not know (scoring/contract.py)."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.devtools.generate import logistics, refunds


def test_an_event_type_outside_the_contract_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logistics, "EVENT_TYPES", ("in_transit",))
    with pytest.raises(ValueError, match="is not an event type of the schema"):
        logistics.tracking_events(pl.DataFrame(), None)  # type: ignore[arg-type]


def test_refund_reason_weights_follow_the_contracts_enum_and_refuse_others() -> None:
    assert refunds._in_enum_order({"b": 0.25, "a": 0.75}, enum=("a", "b", "c")) == [0.75, 0.25, 0.0]
    with pytest.raises(ValueError, match=r"not in the schema's enum: \['typo'\]"):
        refunds._in_enum_order({"typo": 1.0}, enum=("a", "b"))
