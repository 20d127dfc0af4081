"""Forwarding a Responses request natively to OpenAI's own `/v1/responses`.

An adapter beside the configured `openai` one (same credentials and base URL) that the pipeline
calls like any other: it sends the Responses body instead of the chat body, and hands the
pipeline what it reads — a whole answer (the upstream's `response` object, its usage as the
`TokenUsage` the ledger bills) or stream "chunks" that each carry one upstream event under
`native_event` beside a chat-shaped delta (so the relay's progress estimate and its usage
reading work unchanged). `routing.pipeline.chat_completion` swaps it in through its `adapt`
parameter, so auth, limits, caps, holds, fallback and the one usage event are the pipeline's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson

from routing.http_client import UpstreamResponse
from routing.providers.base import Completion, ProviderAdapter, UpstreamCall, UpstreamRequest, json_headers
from routing.providers.sse import sse_events
from routing.resolve import Candidate
from usage.types import TokenUsage

NATIVE_PROVIDERS = frozenset({"openai"})
# Mesh's own fields, and those Mesh answers for itself (the conversation is sent whole, unstored).
NOT_FORWARDED = frozenset(
    {"session_id", "models", "previous_response_id", "store", "stream", "input", "model"}
)


# What other providers' answers leave on items for their next turn; OpenAI refuses unknown fields.
PROVIDER_STATE = frozenset({"thinking_blocks", "thought_signature"})


def natively_served(candidates: list[Candidate]) -> bool:
    """Whether every candidate speaks the Responses API itself (then built-in tools may pass)."""
    return all(candidate.adapter.name in NATIVE_PROVIDERS for candidate in candidates)


def native_input(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as OpenAI takes it as input: Mesh's ids on user turns dropped, reasoning
    items only when they carry their encrypted content (an unstored upstream knows no other)."""
    sent: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "reasoning" and not item.get("encrypted_content"):
            continue
        if kind == "message" and item.get("role") != "assistant":
            item = {name: value for name, value in item.items() if name not in ("id", "status")}
        sent.append({name: value for name, value in item.items() if name not in PROVIDER_STATE})
    return sent


def native_body(raw: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    body = {name: value for name, value in raw.items() if name not in NOT_FORWARDED}
    return {**body, "input": native_input(items), "store": False}


def usage_of(usage: Any) -> TokenUsage:
    if not isinstance(usage, dict):
        return TokenUsage()
    details = usage.get("input_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The Responses usage in chat's shape (what the relay bills a stream from)."""
    output_details = usage.get("output_tokens_details") or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens") or 0),
        "completion_tokens": int(usage.get("output_tokens") or 0),
        "prompt_tokens_details": {
            "cached_tokens": int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
        },
        "completion_tokens_details": {"reasoning_tokens": int(output_details.get("reasoning_tokens") or 0)},
    }


class OpenAIResponsesAdapter(ProviderAdapter):
    """The `openai` provider, asked at `/responses` with the Responses body."""

    def __init__(self, base: ProviderAdapter, body: dict[str, Any]) -> None:
        super().__init__(name=base.name, api_key=base.api_key, base_url=base.base_url, options=base.options)
        self.body = body

    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        body = {**self.body, "model": call.upstream_model, "stream": call.stream}
        return UpstreamRequest(
            url=f"{self.base_url}/responses",
            headers=json_headers({"Authorization": f"Bearer {self.api_key}"}, stream=call.stream),
            body=orjson.dumps(body),
        )

    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.malformed("a response that is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("output"), list):
            raise self.malformed("a response without output")
        return Completion(payload=payload, usage=usage_of(payload.get("usage")))

    async def iter_chunks(
        self, response: UpstreamResponse, call: UpstreamCall
    ) -> AsyncIterator[dict[str, Any]]:
        async for event in sse_events(response):
            if not event.data or event.data == "[DONE]":
                continue
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise self.malformed("a stream event that is not JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise self.malformed("a stream event without a type")
            yield self._chunk(data)

    def _chunk(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event["type"]
        if kind == "response.failed":
            raise self.stream_failed((event.get("response") or {}).get("error"))
        if kind == "error":
            raise self.stream_failed({**event, "type": None})  # its `type` names the event, not the error
        chunk: dict[str, Any] = {"native_event": event, "choices": []}
        delta = event.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str):
            chunk["choices"] = [{"index": 0, "delta": {"content": delta}}]
        elif kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            call = {"index": 0, "function": {"arguments": delta}}
            chunk["choices"] = [{"index": 0, "delta": {"tool_calls": [call]}}]
        response = event.get("response")
        if kind in ("response.completed", "response.incomplete") and isinstance(response, dict):
            usage = response.get("usage")
            if isinstance(usage, dict):
                chunk["usage"] = chat_usage(usage)
        return chunk


def native_candidates(candidates: list[Candidate], body: dict[str, Any]) -> list[Candidate]:
    """`candidates` with each OpenAI one asked natively (what `chat_completion(adapt=...)` takes)."""
    return [
        dataclasses.replace(candidate, adapter=OpenAIResponsesAdapter(candidate.adapter, body))
        if candidate.adapter.name in NATIVE_PROVIDERS
        else candidate
        for candidate in candidates
    ]
