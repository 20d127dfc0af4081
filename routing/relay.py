"""`CompletionStream`: an open upstream stream, relayed as OpenAI `chat.completion.chunk`s.

Each upstream chunk is re-emitted as soon as it arrives (the model name rewritten
to what served it); usage is taken from the final usage chunk, which Mesh always
requests and forwards only when the client asked for it. A failure after the
first byte ends the stream with an error chunk (and `[DONE]` on the wire), never a
silent cut. Settlement (closing the upstream, billing what it produced) is `aclose()`,
which does not depend on the relay having started: whoever holds the stream calls it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import Any, TypeVar

import orjson
from django.conf import settings

from keys.limits import RateLimitState
from meshplatform import tracing
from meshplatform.errors import GatewayError, GatewayTimeout, UpstreamError
from routing.http_client import UpstreamTransportError
from routing.providers.base import usage_from_openai
from routing.upstream import OpenStream, timeout_error
from usage.estimate import tokens_from_bytes
from usage.ledger import LedgerEntry
from usage.types import TokenUsage

T = TypeVar("T")

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


class StreamClock:
    """When a stream next reports its progress, and when it must end: checked once per chunk (one
    clock read), acted on every MESH_STREAM_PROGRESS_INTERVAL_S (no Redis command per chunk). The
    upstream read timeout bounds the gap between chunks; MESH_STREAM_MAX_S bounds the whole."""

    __slots__ = ("ends_at", "interval_s", "max_s", "next_tick")

    def __init__(self) -> None:
        now = time.monotonic()
        self.interval_s = float(settings.MESH_STREAM_PROGRESS_INTERVAL_S)
        self.max_s = float(settings.MESH_STREAM_MAX_S)
        self.ends_at: float = now + self.max_s
        self.next_tick: float = min(now + self.interval_s, self.ends_at)

    def due(self) -> bool:
        return time.monotonic() >= self.next_tick

    def tick(self) -> bool:
        """Schedule the next report; False once the stream has lasted its longest allowed time."""
        now = time.monotonic()
        self.next_tick = min(now + self.interval_s, self.ends_at)
        return now < self.ends_at


def _too_long(stream: OpenStream, max_s: float) -> GatewayTimeout:
    return GatewayTimeout(
        f"The stream reached the longest a stream may last ({max_s:g}s) and was ended.",
        provider_error=stream.candidate.adapter.provider_error(None, "stream too long"),
        retryable=False,
    )


def _carries_output(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries output (content or a tool call): time to first token, the estimate."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def prompt_tokens_estimate(body: dict[str, Any]) -> int:
    """The prompt's tokens, guessed from its messages' JSON size (billed if no usage arrives)."""
    return tokens_from_bytes(len(orjson.dumps(body.get("messages"))))


def _chunk_as_is(chunk: dict[str, Any]) -> dict[str, Any]:
    return chunk


class CompletionStream:
    """An answer being streamed: the upstream's first chunk arrived, so fallback is over.

    Consume it once, with `sse()` (Server-Sent Events bytes ending with `data: [DONE]`, what the
    HTTP view sends) or `chunks()` (the `chat.completion.chunk` dicts, for a Celery task, a batch
    line or a Compare fan-out; a failure after the first chunk is a last chunk whose
    `finish_reason` is "error" and whose `error` is the envelope's body). The stream settles
    itself when it ends, before its last item is handed out. A caller that stops early, or
    never starts, must call `aclose()` (or use `async with stream:`): it closes the upstream and
    bills what it produced, exactly once, even if iteration never began or is cancelled.
    """

    __slots__ = (
        "_closed",
        "_completed",
        "_content_chunks",
        "_entry",
        "_failure",
        "_prompt_tokens",
        "_started",
        "_timeout",
        "_upstream",
        "_usage",
        "_wants_usage",
        "model",
        "rate_limits",
        "request_id",
    )

    def __init__(
        self,
        upstream: OpenStream,
        *,
        entry: LedgerEntry,
        client_wants_usage: bool,
        prompt_tokens_estimate: int,
        timeout: float,
        rate_limits: RateLimitState,
    ) -> None:
        self._upstream = upstream
        self._entry = entry
        self._wants_usage = client_wants_usage
        self._prompt_tokens = prompt_tokens_estimate
        self._timeout = timeout
        self._usage: TokenUsage | None = None
        self._content_chunks = 0
        self._completed = False
        self._failure: GatewayError | None = None
        self._closed = False
        self._started = False
        self.model = upstream.candidate.entry.model_id
        self.request_id = entry.request_id
        self.rate_limits = rate_limits

    def sse(self) -> AsyncGenerator[bytes, None]:
        """The stream as Server-Sent Events, `data: [DONE]` last."""
        return self._relay(sse_event, DONE)

    def chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        """The stream as `chat.completion.chunk` dicts."""
        return self._relay(_chunk_as_is, None)

    async def __aenter__(self) -> CompletionStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the upstream and bill what it produced; once, however and whenever called.

        A stream that did not reach its end is billed as cancelled (499) unless it failed, for the
        prompt estimate plus one token per content delta when the upstream's usage never came.
        """
        if self._closed:
            return
        self._closed = True
        interrupted: asyncio.CancelledError | None = None
        try:
            await self._upstream.response.aclose()
        except asyncio.CancelledError as cancelled:  # bill anyway, then let the cancellation through
            interrupted = cancelled
        usage = self._usage
        tokens = usage or self._estimate()
        tracing.attempt_stream_ended(
            self._upstream.trace,
            input_tokens=tokens.prompt_tokens,
            output_tokens=tokens.completion_tokens,
            estimated=usage is None,
            failure=self._failure,
            cancelled=not self._completed,
        )
        await self._entry.stream_finished(
            tokens=tokens,
            estimated=usage is None,
            failure=self._failure,
            cancelled=not self._completed,
        )
        if interrupted is not None:
            raise interrupted

    @property
    def usage(self) -> TokenUsage:
        """What the stream is billed for so far: the upstream's count, else the estimate."""
        return self._usage or self._estimate()

    @property
    def failure(self) -> GatewayError | None:
        """The failure that ended the stream after its first chunk, if one did."""
        return self._failure

    def _estimate(self) -> TokenUsage:
        """Without the upstream's count: OpenAI-compatible upstreams emit about one token per delta."""
        return TokenUsage(prompt_tokens=self._prompt_tokens, completion_tokens=self._content_chunks)

    async def _relay(self, encode: Callable[[dict[str, Any]], T], done: T | None) -> AsyncGenerator[T, None]:
        if self._started:
            raise RuntimeError("a CompletionStream is consumed once")
        self._started = True
        model, wants_usage, entry, rest = self.model, self._wants_usage, self._entry, self._upstream.rest
        clock = StreamClock()
        last: dict[str, Any] = {}  # the id and created time an in-stream error chunk repeats
        try:
            try:
                chunk: dict[str, Any] = self._upstream.first_chunk
                while True:
                    last = chunk
                    chunk["model"] = model
                    if chunk.get("usage"):
                        self._usage = usage_from_openai(chunk["usage"])
                        if not wants_usage:
                            if not chunk.get("choices"):
                                chunk = await rest.__anext__()
                                continue
                            chunk.pop("usage")
                    elif not wants_usage:
                        chunk.pop("usage", None)
                    if _carries_output(chunk):
                        if not self._content_chunks:
                            entry.first_output()
                        self._content_chunks += 1
                    yield encode(chunk)
                    if clock.due():
                        if not clock.tick():
                            raise _too_long(self._upstream, clock.max_s)
                        await entry.stream_progress(self._usage or self._estimate())
                    chunk = await rest.__anext__()
            except StopAsyncIteration:
                self._completed = True
            except (GatewayError, UpstreamTransportError) as error:
                self._failure = _as_gateway_error(error, self._upstream, self._timeout)
            if self._failure is not None:
                chunk_id, created = last.get("id", ""), last.get("created", int(time.time()))
                yield encode(error_chunk(self._failure, chunk_id=chunk_id, created=created, model=model))
            await self.aclose()  # durable before the consumer sees the end
            if done is not None:
                yield done
        finally:
            await self.aclose()  # the consumer stopped early or was cancelled: settle now
