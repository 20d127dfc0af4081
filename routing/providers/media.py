"""Embeddings and image generation on each provider's wire format, behind OpenAI's shapes.

OpenAI-compatible upstreams (OpenAI, OpenRouter, operator-configured base URLs) take the body as
sent; Azure addresses a deployment; Gemini embeds through `embedContent` (one text) and
`batchEmbedContents` (several, GEMINI_BATCH_LIMIT per call), whose answers become OpenAI's
`list` of `embedding` objects. A provider with no such API is a 400 before any upstream call.
Errors are read by the provider's chat adapter (`map_error`), so they mean the same everywhere.
"""

from __future__ import annotations

import base64
import time
from array import array
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from meshplatform.errors import BadRequest
from routing.providers.base import (
    ProviderAdapter,
    UpstreamRequest,
    json_headers,
    load_json,
    unsupported_value,
    usage_from_openai,
)
from usage.estimate import tokens_from_bytes
from usage.types import TokenUsage

GEMINI_BATCH_LIMIT = 100  # batchEmbedContents' bound on requests per call
EMBEDDING_PROVIDERS = frozenset({"openai", "openrouter", "azure", "gemini"})
IMAGE_PROVIDERS = frozenset({"openai", "openrouter", "azure"})


@dataclass(frozen=True, slots=True)
class MediaCall:
    """One attempt at one provider: the OpenAI-shaped body (Mesh fields removed) and its target."""

    upstream_model: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MediaAnswer:
    """An OpenAI-shaped answer, what it used, and whether Mesh estimated the tokens."""

    payload: dict[str, Any]
    usage: TokenUsage
    estimated: bool = False


def endpoint_unsupported(provider: str, what: str) -> BadRequest:
    return BadRequest(
        f"The {provider} provider has no {what} API in Mesh; use a model of another provider.",
        code="model_not_supported",
        http_status=400,
        param="model",
    )


def _json_headers(adapter: ProviderAdapter) -> dict[str, str]:
    if adapter.name == "azure":
        return json_headers({"api-key": adapter.api_key})
    return json_headers({"Authorization": f"Bearer {adapter.api_key}"})


def _openai_url(adapter: ProviderAdapter, call: MediaCall, path: str) -> str:
    if adapter.name == "azure":
        version = adapter.options.get("api_version", "2024-10-21")
        deployment = quote(call.upstream_model, safe="")
        return f"{adapter.base_url}/openai/deployments/{deployment}/{path}?api-version={version}"
    return f"{adapter.base_url}/{path}"


def _openai_body(adapter: ProviderAdapter, call: MediaCall) -> bytes:
    body = {**call.body, "model": call.upstream_model}
    if adapter.name == "azure":
        body.pop("model")  # the deployment names the model
    return orjson.dumps(body)


# Embeddings.


def embeddings_requests(adapter: ProviderAdapter, call: MediaCall) -> list[UpstreamRequest]:
    """The HTTP requests that embed `call`'s inputs (several only for Gemini's batches)."""
    if adapter.name not in EMBEDDING_PROVIDERS:
        raise endpoint_unsupported(adapter.name, "embeddings")
    if adapter.name == "gemini":
        return _gemini_requests(adapter, call)
    url = _openai_url(adapter, call, "embeddings")
    return [UpstreamRequest(url=url, headers=_json_headers(adapter), body=_openai_body(adapter, call))]


def embeddings_answer(adapter: ProviderAdapter, bodies: list[bytes], call: MediaCall) -> MediaAnswer:
    """The upstream's answers as OpenAI's embeddings `list` (a 502 for an answer Mesh cannot read)."""
    if adapter.name == "gemini":
        return _gemini_answer(adapter, bodies, call)
    payload = load_json(bodies[0])
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise adapter.malformed("an embeddings response without data")
    asked = _input_count(call.body.get("input"))
    if len(payload["data"]) != asked:
        raise adapter.malformed(f"{len(payload['data'])} embeddings for {asked} inputs")
    usage = payload.get("usage")
    tokens = usage_from_openai(usage if isinstance(usage, dict) else None)
    return MediaAnswer(payload=payload, usage=tokens)


def _input_count(value: Any) -> int:
    """How many vectors `input` asks for: one for a text or a token array, else one per item."""
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


def _texts(call: MediaCall, provider: str) -> list[str]:
    value = call.body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise unsupported_value(provider, "input", "token arrays are not accepted, send the texts")


def _gemini_requests(adapter: ProviderAdapter, call: MediaCall) -> list[UpstreamRequest]:
    texts = _texts(call, adapter.name)
    model = quote(call.upstream_model, safe="")
    headers = json_headers({"x-goog-api-key": adapter.api_key})
    options: dict[str, Any] = {}
    if call.body.get("dimensions") is not None:
        options["outputDimensionality"] = call.body["dimensions"]
    if len(texts) == 1:
        body = {"content": {"parts": [{"text": texts[0]}]}, **options}
        url = f"{adapter.base_url}/models/{model}:embedContent"
        return [UpstreamRequest(url=url, headers=headers, body=orjson.dumps(body))]
    url = f"{adapter.base_url}/models/{model}:batchEmbedContents"
    name = f"models/{call.upstream_model}"
    requests = []
    for start in range(0, len(texts), GEMINI_BATCH_LIMIT):
        batch = texts[start : start + GEMINI_BATCH_LIMIT]
        items = [{"model": name, "content": {"parts": [{"text": text}]}, **options} for text in batch]
        requests.append(UpstreamRequest(url=url, headers=headers, body=orjson.dumps({"requests": items})))
    return requests


def _gemini_answer(adapter: ProviderAdapter, bodies: list[bytes], call: MediaCall) -> MediaAnswer:
    vectors: list[Any] = []
    for raw in bodies:
        data = load_json(raw)
        if isinstance(data, dict) and isinstance(data.get("embedding"), dict):
            vectors.append(data["embedding"].get("values"))
        elif isinstance(data, dict) and isinstance(data.get("embeddings"), list):
            vectors.extend(
                item.get("values") if isinstance(item, dict) else None for item in data["embeddings"]
            )
        else:
            raise adapter.malformed("an answer that is not an EmbedContentResponse")
    texts = _texts(call, adapter.name)
    if len(vectors) != len(texts) or not all(isinstance(v, list) for v in vectors):
        raise adapter.malformed(f"{len(vectors)} embeddings for {len(texts)} inputs")
    as_base64 = call.body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _base64(vector) if as_base64 else vector}
        for index, vector in enumerate(vectors)
    ]
    # Gemini's embedding answers carry no token count: Mesh estimates it from the texts.
    prompt = sum(max(1, tokens_from_bytes(len(text.encode()))) for text in texts)
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    payload = {"object": "list", "data": data, "model": call.upstream_model, "usage": usage}
    return MediaAnswer(payload=payload, usage=TokenUsage(prompt_tokens=prompt), estimated=True)


def _base64(vector: list[float]) -> str:
    """OpenAI's `base64` encoding: little-endian float32s."""
    floats = array("f", vector)
    if floats.itemsize != 4:  # pragma: no cover - every platform Mesh runs on has 4-byte floats
        raise RuntimeError("float32 arrays are required")
    return base64.b64encode(floats.tobytes()).decode()


# Images.


def images_request(adapter: ProviderAdapter, call: MediaCall) -> UpstreamRequest:
    if adapter.name not in IMAGE_PROVIDERS:
        raise endpoint_unsupported(adapter.name, "image generation")
    url = _openai_url(adapter, call, "images/generations")
    return UpstreamRequest(url=url, headers=_json_headers(adapter), body=_openai_body(adapter, call))


def images_answer(adapter: ProviderAdapter, body: bytes) -> MediaAnswer:
    payload = load_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise adapter.malformed("an images response without data")
    payload.setdefault("created", int(time.time()))
    usage = payload.get("usage")
    tokens = TokenUsage()
    if isinstance(usage, dict):  # gpt-image-1 reports tokens (Mesh bills per image from the catalog)
        prompt, output = usage.get("input_tokens"), usage.get("output_tokens")
        tokens = TokenUsage(
            prompt_tokens=prompt if isinstance(prompt, int) else 0,
            completion_tokens=output if isinstance(output, int) else 0,
        )
    return MediaAnswer(payload=payload, usage=tokens)
