"""POST /v1/embeddings through the official openai SDK and the raw HTTP interface: shapes, model
resolution, billing (one event per request, from catalog prices), caps, limits and hostile input."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from routing.media_schema import parse_embeddings_request
from simulator.media_api import vector
from simulator.server import SimulatorServer
from tests.usage.conftest import ledger_events
from usage.models import UsageEvent

SMALL = "openai/text-embedding-3-small"
PRICE_PER_TOKEN = Decimal("0.02") / 1_000_000  # the seed's list price of text-embedding-3-small


def embedding_calls(simulator: SimulatorServer) -> list[dict[str, Any]]:
    return [r for r in simulator.requests() if r["path"].endswith("/embeddings")]


def test_a_text_gets_a_float_vector_of_the_models_dimension(acme_openai: Any) -> None:
    result = acme_openai.embeddings.create(
        model=SMALL, input="The food was delicious", encoding_format="float"
    )
    assert result.object == "list" and result.model == SMALL
    assert [d.index for d in result.data] == [0] and result.data[0].object == "embedding"
    assert len(result.data[0].embedding) == 1536
    # The simulator's vector for this text: the gateway relays it unchanged.
    assert result.data[0].embedding == vector("text-embedding-3-small", "The food was delicious", 1536)
    assert result.usage.prompt_tokens == 4 and result.usage.total_tokens == 4


def test_base64_vectors_decode_to_the_float_ones(acme_openai: Any, acme_http: httpx.Client) -> None:
    floats = acme_openai.embeddings.create(model=SMALL, input=["alpha", "beta"], encoding_format="float")
    raw = acme_http.post(
        "/embeddings", json={"model": SMALL, "input": ["alpha", "beta"], "encoding_format": "base64"}
    )
    assert raw.status_code == 200
    encoded = [item["embedding"] for item in raw.json()["data"]]
    assert all(isinstance(item, str) for item in encoded)
    for text, float_item in zip(encoded, floats.data, strict=True):
        decoded = struct.unpack(f"<{1536}f", base64.b64decode(text))
        assert decoded == pytest.approx(float_item.embedding, abs=1e-6)
    # The SDK's default asks base64 and decodes it itself.
    default = acme_openai.embeddings.create(model=SMALL, input=["alpha", "beta"])
    assert default.data[1].embedding == pytest.approx(floats.data[1].embedding, abs=1e-6)


def test_lists_token_arrays_and_dimensions(acme_openai: Any, simulator: SimulatorServer) -> None:
    texts = acme_openai.embeddings.create(model=SMALL, input=["one", "two", "three"], encoding_format="float")
    assert [d.index for d in texts.data] == [0, 1, 2]
    assert texts.data[0].embedding != texts.data[1].embedding

    tokens = acme_openai.embeddings.create(model=SMALL, input=[1, 2, 3, 4, 5], encoding_format="float")
    assert len(tokens.data) == 1 and tokens.usage.prompt_tokens == 5

    arrays = acme_openai.embeddings.create(model=SMALL, input=[[1, 2], [3, 4, 5]], encoding_format="float")
    assert len(arrays.data) == 2 and arrays.usage.prompt_tokens == 5

    short = acme_openai.embeddings.create(
        model=SMALL, input="shorter", dimensions=256, encoding_format="float"
    )
    assert len(short.data[0].embedding) == 256
    sent = embedding_calls(simulator)[-1]["body"]
    assert sent["model"] == "text-embedding-3-small" and sent["dimensions"] == 256


def test_one_event_per_request_billed_at_the_catalog_input_price(
    acme_http: httpx.Client, acme_key: CreatedKey
) -> None:
    ok = acme_http.post(
        "/embeddings", json={"model": SMALL, "input": ["a b c", "d e"], "session_id": "idx-1"}
    )
    bad = acme_http.post("/embeddings", json={"model": SMALL, "input": []})
    assert ok.status_code == 200 and bad.status_code == 422
    ids = [ok.headers["X-Request-Id"], bad.headers["X-Request-Id"]]
    events = ledger_events(ids)

    event = events[ids[0]]
    assert (event.endpoint, event.session_id, event.model_requested, event.model_served) == (
        "embeddings", "idx-1", SMALL, SMALL,
    )  # fmt: skip
    assert (event.prompt_tokens, event.completion_tokens) == (5, 0)
    assert event.cost_usd == 5 * PRICE_PER_TOKEN and event.http_status == 200 and event.images == 0
    refused = events[ids[1]]
    assert (refused.endpoint, refused.http_status, refused.cost_usd) == ("embeddings", 422, Decimal(0))
    assert UsageEvent.objects.filter(api_key_id=acme_key.api_key.pk).count() == 2


def test_a_chat_completion_event_still_records_the_default_endpoint(acme_http: httpx.Client) -> None:
    response = acme_http.post(
        "/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    request_id = response.headers["X-Request-Id"]
    assert ledger_events([request_id])[request_id].endpoint == "chat.completions"


def test_model_kinds_do_not_cross(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    chat_for_embeddings = acme_http.post("/embeddings", json={"model": "openai/gpt-4o-mini", "input": "x"})
    assert chat_for_embeddings.status_code == 400
    error = chat_for_embeddings.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_supported", "model")
    assert "/v1/chat/completions" in error["message"]

    embedding_for_chat = acme_http.post(
        "/chat/completions", json={"model": SMALL, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert embedding_for_chat.status_code == 400
    assert embedding_for_chat.json()["error"]["code"] == "model_not_supported"
    assert "/v1/embeddings" in embedding_for_chat.json()["error"]["message"]
    assert simulator.requests() == []


def test_bare_names_resolve_and_the_keys_chat_default_does_not_apply(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    chat_default = api_key_create(tenant=tenant_acme, default_model="openai/gpt-4o-mini")
    embedding_default = api_key_create(tenant=tenant_acme, default_model="openai/text-embedding-3-large")
    with httpx.Client(base_url=api_url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {chat_default.plaintext}"}
        missing = client.post("/embeddings", json={"input": "x"}, headers=headers)
        assert missing.status_code == 422 and missing.json()["error"]["param"] == "model"
        assert "embedding model" in missing.json()["error"]["message"]

        bare = client.post(
            "/embeddings", json={"model": "text-embedding-3-small", "input": "x"}, headers=headers
        )
        assert bare.status_code == 200 and bare.json()["model"] == SMALL

        headers = {"Authorization": f"Bearer {embedding_default.plaintext}"}
        defaulted = client.post("/embeddings", json={"input": "x"}, headers=headers)
        assert defaulted.status_code == 200 and defaulted.json()["model"] == "openai/text-embedding-3-large"
        assert len(defaulted.json()["data"][0]["embedding"]) == 3072

        unknown = client.post("/embeddings", json={"model": "openai/nope", "input": "x"}, headers=headers)
        assert unknown.status_code == 404
    assert len(embedding_calls(simulator)) == 2


HOSTILE_BODIES = [
    ({"model": SMALL, "input": ["x"] * 2049}, "input"),
    ({"model": SMALL, "input": [[1]] * 2049}, "input"),
    ({"model": SMALL, "input": list(range(8193))}, "input"),
    ({"model": SMALL, "input": "nul \u0000 inside"}, "input"),
    ({"model": SMALL, "input": ["fine", "nul\u0000"]}, "input.1"),
    ({"model": SMALL, "input": 5}, "input"),
    ({"model": SMALL, "input": {"text": "x"}}, "input"),
    ({"model": SMALL, "input": ["a", 1]}, "input.1"),
    ({"model": SMALL, "input": [[1, 2], [3, "4"]]}, "input.1.1"),
    ({"model": SMALL, "input": [[1], []]}, "input.1"),
    ({"model": SMALL, "input": [1, -2]}, "input.1"),
    ({"model": SMALL, "input": [True]}, "input.0"),
    ({"model": SMALL, "input": [["nested", ["deeper"]]]}, "input.0.0"),
    ({"model": SMALL, "input": ""}, "input"),
    ({"model": SMALL, "input": []}, "input"),
    ({"model": SMALL}, "input"),
    ({"model": SMALL, "input": "x", "dimensions": "256"}, "dimensions"),
    ({"model": SMALL, "input": "x", "dimensions": 0}, "dimensions"),
    ({"model": SMALL, "input": "x", "dimensions": 1537}, "dimensions"),
    ({"model": SMALL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"model": 7, "input": "x"}, "model"),
    ({"model": SMALL, "input": "x", "session_id": ["s"]}, "session_id"),
]


@pytest.mark.parametrize(("body", "param"), HOSTILE_BODIES, ids=[p for _, p in HOSTILE_BODIES])
def test_hostile_input_is_a_422_naming_the_field_and_never_reaches_the_upstream(
    acme_http: httpx.Client, simulator: SimulatorServer, body: dict[str, Any], param: str
) -> None:
    response = acme_http.post("/embeddings", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == param
    assert response.json()["request_id"] == response.headers["X-Request-Id"]
    assert embedding_calls(simulator) == []


def test_not_json_or_not_an_object_is_refused(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    not_json = acme_http.post("/embeddings", content=b"{nope", headers={"Content-Type": "application/json"})
    a_list = acme_http.post("/embeddings", json=["input"])
    form = acme_http.post("/embeddings", data={"input": "x"})
    assert (not_json.status_code, a_list.status_code, form.status_code) == (422, 422, 415)
    assert embedding_calls(simulator) == []


def test_keys_are_required_and_rate_limits_count_embeddings(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        assert client.post("/embeddings", json={"model": SMALL, "input": "x"}).status_code == 401
        key = api_key_create(tenant=tenant_acme, rpm=1)
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        first = client.post("/embeddings", json={"model": SMALL, "input": "x"}, headers=headers)
        second = client.post("/embeddings", json={"model": SMALL, "input": "x"}, headers=headers)
    assert first.status_code == 200 and second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded" and second.headers["Retry-After"]
    events = ledger_events([first.headers["X-Request-Id"], second.headers["X-Request-Id"]])
    assert events[second.headers["X-Request-Id"]].endpoint == "embeddings"
    assert len(embedding_calls(simulator)) == 1


def test_a_hard_cap_holds_the_input_bound_before_the_upstream_call(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    # 2,000 bytes of input can cost 2,000 tokens: $0.00004 at $0.02/M, above this cap.
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.00003"), hard_cap=True)
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        refused = client.post("/embeddings", json={"model": SMALL, "input": ["word " * 400]})
        fits = client.post("/embeddings", json={"model": SMALL, "input": ["word " * 100]})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "spend_limit_exceeded"
    assert fits.status_code == 200, fits.text
    assert len(embedding_calls(simulator)) == 1
    events = ledger_events([refused.headers["X-Request-Id"], fits.headers["X-Request-Id"]])
    assert events[fits.headers["X-Request-Id"]].cost_usd == 100 * PRICE_PER_TOKEN


def test_a_soft_cap_reached_refuses_embeddings(api_url: str, tenant_acme: Tenant) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.000001"))
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        # 60 tokens: $0.0000012, past the cap once billed.
        first = client.post("/embeddings", json={"model": SMALL, "input": "w " * 60})
        ledger_events([first.headers["X-Request-Id"]])
        second = client.post("/embeddings", json={"model": SMALL, "input": "x"})
    assert first.status_code == 200 and second.status_code == 402
    assert second.json()["error"]["code"] == "spend_limit_exceeded"


def test_upstream_errors_keep_their_meaning_and_are_recorded(
    acme_openai: Any, acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="text-embedding-3-small", times=1, status=500)
    failed = acme_http.post("/embeddings", json={"model": SMALL, "input": "x"})
    assert failed.status_code == 502 and failed.json()["error"]["provider_error"]["status"] == 500
    with pytest.raises(openai.BadRequestError) as refused:  # the upstream's own 400 keeps its status
        acme_openai.embeddings.create(model="openai/text-embedding-ada-002", input="x", dimensions=8)
    assert refused.value.status_code == 400
    simulator.script(model="text-embedding-3-small", times=1, malformed=True)
    unreadable = acme_http.post("/embeddings", json={"model": SMALL, "input": "x"})
    assert unreadable.status_code == 502 and unreadable.json()["error"]["code"] == "upstream_error"
    short = '{"object": "list", "data": [], "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}'
    missing = acme_http.post(
        "/embeddings", json={"model": SMALL, "input": ["x", "y"], "mock": {"raw_body": short}}
    )
    assert missing.status_code == 502 and "0 embeddings for 2 inputs" in missing.json()["error"]["message"]
    ids = [r.headers["X-Request-Id"] for r in (failed, unreadable, missing)]
    events = ledger_events(ids)
    for event in events.values():
        assert (event.http_status, event.cost_usd, event.endpoint) == (502, Decimal(0), "embeddings")


def test_two_tenants_see_only_their_own_embedding_usage(
    acme_http: httpx.Client, api_url: str, globex_key: CreatedKey, acme_key: CreatedKey
) -> None:
    acme = acme_http.post(
        "/embeddings", json={"model": SMALL, "input": "acme text here", "session_id": "shared"}
    )
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}, timeout=30
    ) as globex_http:
        globex = globex_http.post("/embeddings", json={"model": SMALL, "input": "g", "session_id": "shared"})
        ledger_events([acme.headers["X-Request-Id"], globex.headers["X-Request-Id"]])
        globex_usage = globex_http.get("/usage", params={"session_id": "shared"}).json()
    acme_usage = acme_http.get("/usage", params={"session_id": "shared"}).json()
    assert acme_usage["totals"]["requests"] == 1 and globex_usage["totals"]["requests"] == 1
    assert Decimal(acme_usage["totals"]["cost_usd"]) == 3 * PRICE_PER_TOKEN
    assert Decimal(globex_usage["totals"]["cost_usd"]) == 1 * PRICE_PER_TOKEN
    rows = UsageEvent.objects.filter(session_id="shared")
    assert {(e.tenant_id, e.api_key_id) for e in rows} == {
        (acme_key.api_key.tenant_id, acme_key.api_key.pk),
        (globex_key.api_key.tenant_id, globex_key.api_key.pk),
    }


def test_a_large_batch_is_validated_in_place_not_copied() -> None:
    texts = [f"document {i}" for i in range(2048)]
    body = orjson.dumps({"model": SMALL, "input": texts, "session_id": "s"})
    request = parse_embeddings_request(body)
    # One list of texts, shared by the typed request and the upstream body (no validation copy).
    assert request.inputs.texts is request.input is request.upstream_fields()["input"]
    assert request.inputs.count == 2048 and "session_id" not in request.upstream_fields()
