"""The meshapi SDK's `embeddings.create` and `images.generate` (sync and async) against the live
gateway: typed answers, the request as sent, errors as the SDK's exceptions, usage by session."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal

import meshapi
import pytest

from keys.services import CreatedKey
from simulator.media_api import vector
from simulator.server import SimulatorServer
from tests.usage.conftest import ledger_events


def test_embeddings_create_returns_typed_vectors(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    result = mesh.embeddings.create(
        meshapi.EmbeddingParams(
            model="openai/text-embedding-3-small",
            input=["first", "second"],
            dimensions=32,
            session_id="sdk-emb",
        )
    )
    assert isinstance(result, meshapi.EmbeddingList) and result.model == "openai/text-embedding-3-small"
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[1].vector() == vector("text-embedding-3-small", "second", 32)
    assert result.usage is not None and result.usage.prompt_tokens == 2
    assert result._request_id
    sent = simulator.requests()[-1]["body"]
    assert sent == {"model": "text-embedding-3-small", "input": ["first", "second"], "dimensions": 32}
    event = ledger_events([result._request_id])[result._request_id]
    assert (event.session_id, event.endpoint) == ("sdk-emb", "embeddings")


def test_base64_vectors_decode_with_vector(mesh: meshapi.MeshAPI) -> None:
    params = {"model": "openai/text-embedding-3-small", "input": [[5, 6, 7]], "encoding_format": "base64"}
    result = mesh.embeddings.create(params)
    assert isinstance(result.data[0].embedding, str)
    assert result.data[0].vector() == pytest.approx(vector("text-embedding-3-small", "5 6 7", 1536), abs=1e-6)


def test_images_generate_returns_pngs_and_is_billed(mesh: meshapi.MeshAPI, acme_key: CreatedKey) -> None:
    result = mesh.images.generate(
        meshapi.ImageGenerationParams(
            model="openai/dall-e-2", prompt="a cat", n=2, size="256x256", response_format="b64_json"
        )
    )
    assert isinstance(result, meshapi.ImagesResponse) and len(result.data) == 2
    assert all(image.image_bytes().startswith(b"\x89PNG") for image in result.data)
    assert result._request_id
    event = ledger_events([result._request_id])[result._request_id]
    assert (event.images, event.cost_usd) == (2, Decimal("0.032"))
    url = mesh.images.generate({"model": "openai/dall-e-3", "prompt": "a dog", "response_format": "url"})
    assert url.data[0].url and url.data[0].b64_json is None
    with pytest.raises(ValueError, match="url"):
        url.data[0].image_bytes()


def test_refusals_are_the_sdks_exceptions(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    with pytest.raises(meshapi.ValidationError) as invalid:
        mesh.images.generate({"model": "openai/dall-e-2", "prompt": "p", "size": "3x3"})
    assert invalid.value.param == "size"
    with pytest.raises(meshapi.BadRequestError) as wrong_kind:
        mesh.embeddings.create({"model": "openai/gpt-4o-mini", "input": "x"})
    assert wrong_kind.value.code == "model_not_supported"
    assert simulator.requests() == []


def test_async_client_embeds_and_draws(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[meshapi.EmbeddingList, meshapi.ImagesResponse]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30) as client:
            embedded = await client.embeddings.create(
                {"model": "openai/text-embedding-3-large", "input": "x"}
            )
            drawn = await client.images.generate(
                meshapi.ImageGenerationParams(model="openai/gpt-image-1", prompt="a tree", quality="low")
            )
            return embedded, drawn

    embedded, drawn = asyncio.run(run())
    assert len(embedded.data[0].vector()) == 3072
    assert base64.b64decode(drawn.data[0].b64_json or "").startswith(b"\x89PNG")
    assert drawn._request_id is not None
    event = ledger_events([drawn._request_id])[drawn._request_id]
    assert (event.model_served, event.cost_usd) == ("openai/gpt-image-1", Decimal("0.011"))


def test_models_say_which_endpoint_they_serve(mesh: meshapi.MeshAPI) -> None:
    models = {m.id: m for m in mesh.models.list().data}
    assert (models["openai/gpt-4o-mini"].kind, models["openai/gpt-4o-mini"].dimensions) == ("chat", None)
    small = mesh.models.retrieve("openai/text-embedding-3-small")
    assert (small.kind, small.dimensions) == ("embedding", 1536)
    assert models["openai/dall-e-3"].kind == "image"
