"""The usage event's comparison_id: on the wire only when set (a chat request's event encodes as
before), decoded back, stored on the row; older entries without it still decode."""

from __future__ import annotations

from decimal import Decimal

import orjson

from usage.codec import event_decode, event_encode, event_row
from usage.types import TokenUsage, UsageEventData


def event(**overrides: object) -> UsageEventData:
    values: dict[str, object] = {
        "request_id": "req_01JTEST", "tenant_id": 1, "key_id": 2, "model_requested": "openai/gpt-4o-mini",
        "started_at": 1_700_000_000.5, "tokens": TokenUsage(prompt_tokens=3, completion_tokens=4),
        "cost_usd": Decimal("0.000123"),
    }  # fmt: skip
    values.update(overrides)
    return UsageEventData(**values)  # type: ignore[arg-type]


def test_a_chat_event_carries_no_comparison_field() -> None:
    encoded = orjson.loads(event_encode(event()))
    assert "comparison_id" not in encoded
    assert event_decode(event_encode(event())).comparison_id is None
    assert event_row(event()).comparison_id == ""


def test_a_compare_run_s_event_round_trips_its_comparison_id() -> None:
    run = event(comparison_id="cmp_01JCOMPARE")
    assert orjson.loads(event_encode(run))["comparison_id"] == "cmp_01JCOMPARE"
    assert event_decode(event_encode(run)) == run
    assert event_row(run).comparison_id == "cmp_01JCOMPARE"
