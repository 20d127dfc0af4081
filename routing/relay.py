"""Relaying an upstream stream to the client as OpenAI-style Server-Sent Events.

Each upstream chunk is re-emitted as soon as it arrives (the model name rewritten
to what served it); usage is taken from the final usage chunk, which Mesh always
requests and forwards only when the client asked for it. A failure after the
first byte ends the stream with an error chunk and `[DONE]`, never a silent cut.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from meshplatform.errors import GatewayError, UpstreamError
from routing.http_client import UpstreamTransportError
from routing.providers.base import usage_from_openai
from routing.upstream import OpenStream, timeout_error
from usage.types import TokenUsage, UsageEventData

DONE = b"data: [DONE]\n\n"


def sse_event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def error_chunk(error: GatewayError, *, chunk_id: str, created: int, model: str) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
        "error": error.body(),
    }


def _as_gateway_error(error: Exception, stream: OpenStream, timeout: float) -> GatewayError:
    """A failure after the first byte, as the error the final chunk carries."""
    if isinstance(error, GatewayError):
        return error
    if isinstance(error, TimeoutError):
        return timeout_error(stream.candidate, timeout, error)
    return UpstreamError(
        f"The {stream.candidate.adapter.name} upstream stream broke off.",
        provider_error=stream.candidate.adapter.provider_error(None, type(error).__name__),
        retryable=False,
    )


def _carries_output(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _estimated_usage(prompt_tokens: int, content_chunks: int) -> TokenUsage:
    """Without the upstream's usage (client left mid-stream), bill the prompt estimate and one
    token per output delta: OpenAI-compatible upstreams emit about one token per delta."""
    return TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=content_chunks)


async def relay_stream(
    stream: OpenStream,
    *,
    event: UsageEventData,
    client_wants_usage: bool,
    prompt_tokens_estimate: int,
    timeout: float,
    on_finish: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The SSE body; `on_finish` bills and records once, however the stream ends: before the
    final `[DONE]` (so the ledger entry is durable before the client sees the end), or when the
    client disconnects."""
    model = stream.candidate.entry.model_id
    chunk_id, created = "", int(time.time())
    content_chunks = 0
    usage: TokenUsage | None = None
    completed = settled = False

    async def settle() -> None:
        nonlocal settled
        if settled:
            return
        settled = True
        if not completed and event.error_code is None:
            event.cancelled = True
            event.error_code = "client_disconnected"
            event.http_status = 499
        event.tokens = usage or _estimated_usage(prompt_tokens_estimate, content_chunks)
        event.tokens_estimated = usage is None
        await stream.response.aclose()
        await on_finish()

    try:
        failure: GatewayError | None = None
        try:
            chunk: dict[str, Any] | None = stream.first_chunk
            while chunk is not None:
                chunk_id = chunk.get("id", chunk_id)
                created = chunk.get("created", created)
                chunk["model"] = model
                if chunk.get("usage"):
                    usage = usage_from_openai(chunk["usage"])
                    if not client_wants_usage:
                        if not chunk.get("choices"):
                            chunk = await anext(stream.rest, None)
                            continue
                        chunk.pop("usage")
                elif not client_wants_usage:
                    chunk.pop("usage", None)
                if _carries_output(chunk):
                    if event.ttft_ms is None:
                        event.ttft_ms = int((time.time() - event.started_at) * 1000)
                    content_chunks += 1
                yield sse_event(chunk)
                chunk = await anext(stream.rest, None)
            completed = True
        except (GatewayError, UpstreamTransportError) as error:
            failure = _as_gateway_error(error, stream, timeout)
        if failure is not None:
            event.http_status, event.error_code = failure.http_status, failure.code
            yield sse_event(error_chunk(failure, chunk_id=chunk_id, created=created, model=model))
        await settle()
        yield DONE
    finally:
        # Runs on normal end, on errors and when the client disconnects (cancellation or aclose).
        await settle()
