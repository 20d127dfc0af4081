"""`client.compare`: create (every model's whole answer) and stream (their chunks, tagged by model)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Self, Unpack

import httpx
from httpx_sse import EventSource

from meshapi._base import RequestOptions, transport_errors
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.compare import CompareEvent, CompareParams, CompareSummary, Comparison, compare_event

ParamsLike = CompareParams | Mapping[str, Any]
PATH = "/v1/compare"
DONE = "[DONE]"


def compare_body(params: ParamsLike, *, stream: bool) -> dict[str, Any]:
    compare = params if isinstance(params, CompareParams) else CompareParams.model_validate(params)
    if compare.async_mode:
        raise ValueError("A comparison answers directly; async_mode is not available for it.")
    return compare.to_body(stream=stream)


def _events(response: httpx.Response) -> Generator[CompareEvent, None, None]:
    with transport_errors():
        for event in EventSource(response).iter_sse():
            if event.data == DONE:
                return
            if event.data:
                yield compare_event(json.loads(event.data))


async def _aevents(response: httpx.Response) -> AsyncGenerator[CompareEvent, None]:
    with transport_errors():
        async for event in EventSource(response).aiter_sse():
            if event.data == DONE:
                return
            if event.data:
                yield compare_event(json.loads(event.data))


class CompareStream:
    """Iterate it for `CompareChunk` / `CompareError` events, then one `CompareSummary`; leaving
    early (`close()`, the `with` block) closes the response and the gateway bills every model for
    what it produced."""

    def __init__(self, open_response: Callable[[], httpx.Response]) -> None:
        self._open = open_response
        self._response: httpx.Response | None = None
        self._events: Generator[CompareEvent, None, None] | None = None
        self.summary: CompareSummary | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> CompareEvent:
        if self._events is None:
            self._response = self._open()
            self._events = _events(self._response)
        event = next(self._events)
        if isinstance(event, CompareSummary):
            self.summary = event
        return event

    def final_summary(self) -> CompareSummary:
        """Reads the rest of the stream; the summary (latency, ttft, usage and cost per model)."""
        for _ in self:
            pass
        if self.summary is None:
            raise ValueError("the stream ended without its summary event")
        return self.summary

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class AsyncCompareStream:
    """`async for` it; as `CompareStream`."""

    def __init__(self, open_response: Callable[[], Awaitable[httpx.Response]]) -> None:
        self._open = open_response
        self._response: httpx.Response | None = None
        self._events: AsyncGenerator[CompareEvent, None] | None = None
        self.summary: CompareSummary | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CompareEvent:
        if self._events is None:
            self._response = await self._open()
            self._events = _aevents(self._response)
        event = await self._events.__anext__()
        if isinstance(event, CompareSummary):
            self.summary = event
        return event

    async def final_summary(self) -> CompareSummary:
        async for _ in self:
            pass
        if self.summary is None:
            raise ValueError("the stream ended without its summary event")
        return self.summary

    async def close(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Compare:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> Comparison:
        """Every model's whole answer side by side (`params.stream` is ignored: use `stream()`)."""
        body = compare_body(params, stream=False)
        return self._transport.request(Comparison, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> CompareStream:
        """The models' chunks as they come, tagged by model; sent when iteration starts."""
        call = self._transport.prepare(
            "POST", PATH, options, json=compare_body(params, stream=True), accept="text/event-stream"
        )
        return CompareStream(lambda: self._transport.send(call, stream=True))


class AsyncCompare:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> Comparison:
        body = compare_body(params, stream=False)
        return await self._transport.request(Comparison, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> AsyncCompareStream:
        """An async iterator of events (no `await`): `async for event in client.compare.stream(p)`."""
        call = self._transport.prepare(
            "POST", PATH, options, json=compare_body(params, stream=True), accept="text/event-stream"
        )

        async def open_response() -> httpx.Response:
            return await self._transport.send(call, stream=True)

        return AsyncCompareStream(open_response)
