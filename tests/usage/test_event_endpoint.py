"""The usage event's `endpoint` and `images`: encoded only when not the default (a chat completion's
event is byte for byte what it was), and carried through the stream to the row."""

from __future__ import annotations

from decimal import Decimal

import orjson

from usage.codec import event_decode, event_encode, event_row
from usage.types import UsageEventData


def event(**fields: object) -> UsageEventData:
    base: dict[str, object] = {
        "request_id": "req_1", "tenant_id": 1, "key_id": 2, "model_requested": "openai/dall-e-2",
        "started_at": 1_700_000_000.5, "cost_usd": Decimal("0.04"),
    }  # fmt: skip
    return UsageEventData(**{**base, **fields})  # type: ignore[arg-type]


def test_a_chat_event_encodes_without_the_new_fields() -> None:
    encoded = orjson.loads(event_encode(event()))
    assert "endpoint" not in encoded and "images" not in encoded
    decoded = event_decode(event_encode(event()))
    assert (decoded.endpoint, decoded.images) == ("chat.completions", 0)


def test_an_image_event_round_trips_its_endpoint_and_count() -> None:
    raw = event_encode(event(endpoint="images.generations", images=2))
    assert orjson.loads(raw)["endpoint"] == "images.generations"
    decoded = event_decode(raw)
    assert (decoded.endpoint, decoded.images, decoded.cost_usd) == ("images.generations", 2, Decimal("0.04"))
    row = event_row(decoded)
    assert (row.endpoint, row.images) == ("images.generations", 2)


def test_an_event_written_before_the_fields_existed_decodes_as_chat() -> None:
    old = orjson.loads(event_encode(event()))
    decoded = event_decode(orjson.dumps(old))
    assert decoded.endpoint == "chat.completions" and decoded.images == 0
