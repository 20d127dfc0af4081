"""OpenAI-compatible upstreams (OpenAI, OpenRouter, any operator-configured base URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from routing.http_client import UpstreamResponse
from routing.providers.base import (
    Completion,
    ProviderAdapter,
    UpstreamCall,
    UpstreamRequest,
    json_headers,
    usage_from_openai,
)
from routing.providers.sse import SSEDecoder
from routing.transforms import transforms_apply


class OpenAICompatibleAdapter(ProviderAdapter):
    """Forwards the body as is (unknown fields included), with the upstream's model name."""

    def upstream_body(self, call: UpstreamCall) -> dict[str, Any]:
        """OpenAI and most compatible servers do not know OpenRouter's transforms: Mesh applies them."""
        return transforms_apply(call.body, context_window=call.context_window)

    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        body = {**self.upstream_body(call), "model": call.upstream_model}
        if call.stream:
            # Always ask for the usage chunk: streamed requests are billed from it.
            body["stream"] = True
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return UpstreamRequest(
            url=f"{self.base_url}/chat/completions",
            headers=json_headers({"Authorization": f"Bearer {self.api_key}"}, stream=call.stream),
            body=orjson.dumps(body),
        )

    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.malformed("a response that is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise self.malformed("a response without choices")
        return Completion(payload=payload, usage=usage_from_openai(payload.get("usage")))

    async def iter_chunks(
        self, response: UpstreamResponse, call: UpstreamCall
    ) -> AsyncIterator[dict[str, Any]]:
        # The decoder driven here rather than through `sse_events`: one async generator less
        # between the upstream's reads and the relay, for every chunk of every stream.
        decoder = SSEDecoder()
        async for data in response.aiter_raw():
            for event in decoder.feed(data):
                if event.data == "[DONE]":
                    return
                if event.data:
                    yield self._chunk(event.data)
        for event in decoder.close():
            if event.data == "[DONE]":
                return
            if event.data:
                yield self._chunk(event.data)

    def _chunk(self, data: str) -> dict[str, Any]:
        """One event's chunk, or the upstream's in-stream error raised."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.malformed("a stream event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise self.malformed("a stream event that is not an object")
        if "error" in chunk and "choices" not in chunk:
            raise self.stream_failed(chunk["error"])
        return chunk


class OpenRouterAdapter(OpenAICompatibleAdapter):
    """OpenRouter applies `transforms` itself, so they are forwarded untouched."""

    def upstream_body(self, call: UpstreamCall) -> dict[str, Any]:
        return call.body
