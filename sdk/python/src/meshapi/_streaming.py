"""`Stream` / `AsyncStream`: the chunks of one streamed completion. Opening (with retries) happens
on first iteration; leaving the loop early, `close()` or the `with` block's end closes the HTTP
response (so the gateway stops generating and bills what was sent). Never retried once open."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx
from httpx_sse import EventSource

from meshapi._assemble import ChatCompletionAccumulator
from meshapi._base import transport_errors
from meshapi._errors import error_from_envelope
from meshapi.types.chat_responses import ChatCompletion, ChatCompletionChunk
from meshapi.types.errors import ErrorEnvelope

DONE = "[DONE]"


def decode_chunk(data: str, response: httpx.Response) -> ChatCompletionChunk:
    """One SSE `data:` payload; a chunk carrying `error` (a failure mid-stream) is raised as its error."""
    chunk = ChatCompletionChunk.model_validate(json.loads(data))
    if chunk.error is not None:
        request_id = response.headers.get("x-request-id")
        envelope = ErrorEnvelope(error=chunk.error, request_id=request_id)
        raise error_from_envelope(envelope, status_code=None, request_id=request_id, headers=response.headers)
    return chunk


@dataclass
class _Opened:
    """The open response, shared by a stream and its chunk generator. The generator never refers to
    the stream object, so dropping the stream (`break`) frees it at once, not at the next GC."""

    response: httpx.Response | None = None
    closed: bool = False


def _sync_chunks(
    open_response: Callable[[], httpx.Response], state: _Opened, accumulator: ChatCompletionAccumulator
) -> Generator[ChatCompletionChunk, None, None]:
    if state.closed:
        return
    state.response = response = open_response()
    try:
        with transport_errors():
            for event in EventSource(response).iter_sse():
                if event.data == DONE:
                    break
                if event.data:
                    chunk = decode_chunk(event.data, response)
                    accumulator.add(chunk)
                    yield chunk
    finally:
        state.closed = True
        response.close()


async def _async_chunks(
    open_response: Callable[[], Awaitable[httpx.Response]],
    state: _Opened,
    accumulator: ChatCompletionAccumulator,
) -> AsyncGenerator[ChatCompletionChunk, None]:
    # Left early, this generator is finalised by the event loop (asyncio's async-generator hooks
    # run its `finally` as soon as the loop drops it), which closes the response.
    if state.closed:
        return
    state.response = response = await open_response()
    try:
        with transport_errors():
            async for event in EventSource(response).aiter_sse():
                if event.data == DONE:
                    break
                if event.data:
                    chunk = decode_chunk(event.data, response)
                    accumulator.add(chunk)
                    yield chunk
    finally:
        state.closed = True
        await response.aclose()


class Stream:
    """Iterate it for `ChatCompletionChunk`s; `final_completion()` assembles what was streamed."""

    def __init__(self, open_response: Callable[[], httpx.Response]) -> None:
        self._state = _Opened()
        self._accumulator = ChatCompletionAccumulator()
        self._chunks = _sync_chunks(open_response, self._state, self._accumulator)

    @property
    def response(self) -> httpx.Response | None:
        """The HTTP response once the stream is open (headers such as `x-request-id`)."""
        return self._state.response

    @property
    def request_id(self) -> str | None:
        response = self._state.response
        return response.headers.get("x-request-id") if response is not None else None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def final_completion(self) -> ChatCompletion:
        """Reads the rest of the stream and returns the whole message (text, tool calls, usage)."""
        for _ in self:
            pass
        return self._accumulator.completion()

    def close(self) -> None:
        self._chunks.close()  # runs the generator's `finally` if it is open
        self._state.closed = True
        if self._state.response is not None:
            self._state.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A `for` loop left with `break` drops the last reference here: close the connection now.
        with contextlib.suppress(Exception):  # a finaliser has no caller to report to (e.g. at shutdown)
            self.close()


class AsyncStream:
    """`async for` it for `ChatCompletionChunk`s; `await final_completion()` assembles them."""

    def __init__(self, open_response: Callable[[], Awaitable[httpx.Response]]) -> None:
        self._state = _Opened()
        self._accumulator = ChatCompletionAccumulator()
        self._chunks = _async_chunks(open_response, self._state, self._accumulator)

    @property
    def response(self) -> httpx.Response | None:
        return self._state.response

    @property
    def request_id(self) -> str | None:
        response = self._state.response
        return response.headers.get("x-request-id") if response is not None else None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._chunks.__anext__()

    async def final_completion(self) -> ChatCompletion:
        async for _ in self:
            pass
        return self._accumulator.completion()

    async def close(self) -> None:
        await self._chunks.aclose()
        self._state.closed = True
        if self._state.response is not None:
            await self._state.response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
