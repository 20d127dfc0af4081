"""Embeddings and images on the translated providers: Gemini's embedContent/batchEmbedContents and
Azure OpenAI's deployments, through the official openai SDK against a gateway with every provider."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import httpx
import openai
import pytest
from openai import OpenAI

from routing.catalog import catalog_changed
from routing.models import CatalogModel
from simulator.media_api import vector
from simulator.server import SimulatorServer
from tests.providers.conftest import upstream_calls
from tests.usage.conftest import ledger_events

GEMINI = "gemini/gemini-embedding-001"


def test_one_text_goes_through_embed_content(client: OpenAI, simulator: SimulatorServer) -> None:
    result = client.embeddings.create(model=GEMINI, input="hello world", encoding_format="float")
    assert result.model == GEMINI and len(result.data[0].embedding) == 3072
    assert result.data[0].embedding == vector("gemini-embedding-001", "hello world", 3072)
    (call,) = upstream_calls(simulator)
    assert call["path"] == "/v1beta/models/gemini-embedding-001:embedContent"
    assert call["headers"]["x-goog-api-key"] == "gemini-sim"
    assert call["body"] == {"content": {"parts": [{"text": "hello world"}]}}


def test_many_texts_go_through_batch_embed_contents_in_batches_of_100(
    client: OpenAI, simulator: SimulatorServer
) -> None:
    texts = [f"text number {i}" for i in range(150)]
    result = client.embeddings.create(model="google/gemini-embedding-001", input=texts, dimensions=64)
    assert [d.index for d in result.data] == list(range(150))
    assert all(len(d.embedding) == 64 for d in result.data)
    assert result.data[120].embedding == pytest.approx(
        vector("gemini-embedding-001", texts[120], 64), abs=1e-6
    )
    calls = upstream_calls(simulator)
    assert [c["path"] for c in calls] == ["/v1beta/models/gemini-embedding-001:batchEmbedContents"] * 2
    assert [len(c["body"]["requests"]) for c in calls] == [100, 50]
    first = calls[0]["body"]["requests"][0]
    assert first == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "text number 0"}]},
        "outputDimensionality": 64,
    }


def test_gemini_vectors_in_base64_and_the_estimated_bill(http: httpx.Client) -> None:
    response = http.post(
        "/embeddings", json={"model": GEMINI, "input": ["abcdefgh", "ijkl"], "encoding_format": "base64"}
    )
    assert response.status_code == 200
    encoded = response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<3072f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vector("gemini-embedding-001", "abcdefgh", 3072), abs=1e-6)
    # Gemini reports no token count: estimated at four bytes a token (8 bytes: 2, 4 bytes: 1).
    assert response.json()["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    request_id = response.headers["X-Request-Id"]
    event = ledger_events([request_id])[request_id]
    assert event.tokens_estimated and event.prompt_tokens == 3 and event.provider == "gemini"
    assert event.cost_usd == 3 * Decimal("0.15") / 1_000_000


def test_gemini_refuses_token_arrays_before_calling(http: httpx.Client, simulator: SimulatorServer) -> None:
    response = http.post("/embeddings", json={"model": GEMINI, "input": [[1, 2, 3]]})
    assert response.status_code == 422 and response.json()["error"]["param"] == "input"
    assert upstream_calls(simulator) == []


def test_gemini_errors_keep_their_meaning(client: OpenAI, simulator: SimulatorServer) -> None:
    simulator.script(model="gemini-embedding-001", times=2, status=429)  # the gateway retries once
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=GEMINI, input="x")
    with pytest.raises(openai.UnprocessableEntityError) as refused:  # past the model's dimension
        client.embeddings.create(model=GEMINI, input="x", dimensions=4096)
    assert refused.value.body["param"] == "dimensions"  # type: ignore[index]
    assert len(upstream_calls(simulator)) == 2


def test_azure_deployments_embed_and_draw(client: OpenAI, simulator: SimulatorServer) -> None:
    embedded = client.embeddings.create(
        model="azure/text-embedding-3-small", input="hi", encoding_format="float"
    )
    drawn = client.images.generate(model="azure/dall-e-3", prompt="a boat", response_format="b64_json")
    assert len(embedded.data[0].embedding) == 1536 and embedded.model == "azure/text-embedding-3-small"
    assert drawn.data is not None and base64.b64decode(drawn.data[0].b64_json or "").startswith(b"\x89PNG")
    paths = [c["path"] for c in upstream_calls(simulator)]
    assert paths == [
        "/openai/deployments/text-embedding-3-small/embeddings",
        "/openai/deployments/dall-e-3/images/generations",
    ]
    calls = upstream_calls(simulator)
    assert all(c["headers"]["api-key"] == "azure-sim" and "model" not in c["body"] for c in calls)


def test_a_provider_without_the_api_is_a_400(http: httpx.Client, simulator: SimulatorServer) -> None:
    # No seed names an Anthropic embedding model; one an operator adds is refused, not sent.
    CatalogModel.objects.create(
        model_id="anthropic/embedder", provider="anthropic", upstream_name="embedder", kind="embedding",
        input_per_mtok_usd=Decimal(1), output_per_mtok_usd=Decimal(0), context_window=1000,
    )  # fmt: skip
    catalog_changed()
    response = http.post("/embeddings", json={"model": "anthropic/embedder", "input": "x"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_supported"
    assert upstream_calls(simulator) == []
