"""The usage event's `endpoint` and `images`: encoded only when not the default (a chat completion's
event is byte for byte what it was), and carried through the stream to the row."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.usage.conftest import event_sums, ledger_events
from tests.usage.test_finance_admin import REPORT, totals_cells
from usage.codec import event_decode, event_encode, event_row
from usage.rollups import usage_rollups_refresh
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


def test_usage_api_and_finance_report_total_every_endpoint(
    acme_http: httpx.Client, finance_http: httpx.Client, acme_key: CreatedKey
) -> None:
    answers = [
        acme_http.post("/chat/completions", json=chat_body()),
        acme_http.post("/embeddings", json={"model": "openai/text-embedding-3-small", "input": ["a b", "c"]}),
        acme_http.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "n": 2}),
        acme_http.post(
            "/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "size": "1x1"}
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 422]
    events = ledger_events([a.headers["X-Request-Id"] for a in answers])
    assert sorted(e.endpoint for e in events.values()) == [
        "chat.completions", "embeddings", "images.generations", "images.generations",
    ]  # fmt: skip
    usage_rollups_refresh()
    sums = event_sums(tenant_id=acme_key.api_key.tenant_id)
    assert sums["requests"] == 4 and sums["cost_usd"] > Decimal("0.04")  # two images at $0.02, and more

    report = acme_http.get("/usage", params={"group_by": "model"}).json()
    assert report["totals"]["requests"] == 4 and Decimal(report["totals"]["cost_usd"]) == sums["cost_usd"]
    by_model = {group["group"]: Decimal(group["totals"]["cost_usd"]) for group in report["data"]}
    assert by_model["openai/dall-e-2"] == Decimal("0.04")
    assert by_model["openai/text-embedding-3-small"] == 3 * Decimal("0.02") / 1_000_000

    cells = totals_cells(finance_http.get(REPORT).text)
    assert (int(cells["requests"]), Decimal(cells["cost_usd"])) == (sums["requests"], sums["cost_usd"])
