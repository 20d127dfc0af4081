"""`client.responses`: the Responses API — create, stream (an iterator of events), retrieve,
delete, and `input_items.list`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Literal, Self, Unpack
from urllib.parse import quote

import httpx
from httpx_sse import EventSource

from meshapi._base import RequestOptions, transport_errors
from meshapi._errors import error_from_envelope
from meshapi._streaming import _Opened
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.errors import ErrorBody, ErrorEnvelope
from meshapi.types.responses import (
    ModelResponse,
    ResponseCreateParams,
    ResponseInputItem,
    ResponseStreamEvent,
)
from meshapi.types.shared import Deleted, ListPage

ParamsLike = ResponseCreateParams | Mapping[str, Any]
PATH = "/v1/responses"
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def response_body(params: ParamsLike, *, stream: bool) -> dict[str, Any]:
    request = (
        params if isinstance(params, ResponseCreateParams) else ResponseCreateParams.model_validate(params)
    )
    return request.to_body(stream=stream)


def response_path(response_id: str, action: str = "") -> str:
    if not response_id:
        raise ValueError("response_id must not be empty")
    return f"{PATH}/{quote(response_id, safe='')}" + (f"/{action}" if action else "")


def page_params(
    limit: int | None, after: str | None, order: Literal["asc", "desc"] | None
) -> dict[str, object]:
    return {"limit": limit, "after": after, "order": order}


def decode_event(data: str, response: httpx.Response) -> ResponseStreamEvent:
    """One event; `response.failed` (a failure mid-stream) is raised as its error."""
    event = ResponseStreamEvent.model_validate(json.loads(data))
    if event.type == "response.failed":
        failed = event.response.error if event.response is not None else None
        request_id = response.headers.get("x-request-id")
        body = ErrorBody(code=failed.code if failed else None, message=failed.message if failed else "failed")
        envelope = ErrorEnvelope(error=body, request_id=request_id)
        raise error_from_envelope(envelope, status_code=None, request_id=request_id, headers=response.headers)
    return event


class _Final:
    response: ModelResponse | None = None

    def add(self, event: ResponseStreamEvent) -> None:
        if event.type in FINAL_EVENTS and event.response is not None:
            self.response = event.response

    def result(self) -> ModelResponse:
        if self.response is None:
            raise ValueError("the stream ended before its response.completed event")
        return self.response


def _sync_events(
    open_response: Callable[[], httpx.Response], state: _Opened, final: _Final
) -> Generator[ResponseStreamEvent, None, None]:
    if state.closed:
        return
    state.response = response = open_response()
    try:
        with transport_errors():
            for sse in EventSource(response).iter_sse():
                if sse.data:
                    event = decode_event(sse.data, response)
                    final.add(event)
                    yield event
    finally:
        state.closed = True
        response.close()


async def _async_events(
    open_response: Callable[[], Awaitable[httpx.Response]], state: _Opened, final: _Final
) -> AsyncGenerator[ResponseStreamEvent, None]:
    if state.closed:
        return
    state.response = response = await open_response()
    try:
        with transport_errors():
            async for sse in EventSource(response).aiter_sse():
                if sse.data:
                    event = decode_event(sse.data, response)
                    final.add(event)
                    yield event
    finally:
        state.closed = True
        await response.aclose()


class ResponseEventStream:
    """Iterate it for `ResponseStreamEvent`s; `final_response()` reads the rest and returns the
    response the last event carried. Leaving early (or `close()`) closes the HTTP response, so the
    gateway stops generating and bills what was produced."""

    def __init__(self, open_response: Callable[[], httpx.Response]) -> None:
        self._state = _Opened()
        self._final = _Final()
        self._events = _sync_events(open_response, self._state, self._final)

    @property
    def request_id(self) -> str | None:
        response = self._state.response
        return response.headers.get("x-request-id") if response is not None else None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ResponseStreamEvent:
        return next(self._events)

    def final_response(self) -> ModelResponse:
        for _ in self:
            pass
        return self._final.result()

    def close(self) -> None:
        self._events.close()
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
        with contextlib.suppress(Exception):
            self.close()


class AsyncResponseEventStream:
    """`async for` it for `ResponseStreamEvent`s; `await final_response()`."""

    def __init__(self, open_response: Callable[[], Awaitable[httpx.Response]]) -> None:
        self._state = _Opened()
        self._final = _Final()
        self._events = _async_events(open_response, self._state, self._final)

    @property
    def request_id(self) -> str | None:
        response = self._state.response
        return response.headers.get("x-request-id") if response is not None else None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ResponseStreamEvent:
        return await self._events.__anext__()

    async def final_response(self) -> ModelResponse:
        async for _ in self:
            pass
        return self._final.result()

    async def close(self) -> None:
        await self._events.aclose()
        self._state.closed = True
        if self._state.response is not None:
            await self._state.response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class InputItems:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def list(
        self,
        response_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[ResponseInputItem]:
        """The response's own input items, newest first unless `order="asc"`; the next page is
        `after=page.last_id`."""
        path, params = response_path(response_id, "input_items"), page_params(limit, after, order)
        return self._transport.request(ListPage[ResponseInputItem], "GET", path, options, params=params)


class AsyncInputItems:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def list(
        self,
        response_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Literal["asc", "desc"] | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[ResponseInputItem]:
        path, params = response_path(response_id, "input_items"), page_params(limit, after, order)
        return await self._transport.request(ListPage[ResponseInputItem], "GET", path, options, params=params)


class Responses:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport
        self.input_items = InputItems(transport)

    def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> ModelResponse:
        """One response as a JSON object (`stream` is ignored: use `stream()` to stream)."""
        body = response_body(params, stream=False)
        return self._transport.request(ModelResponse, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> ResponseEventStream:
        """An iterator of events; the request is sent (and retried) when iteration starts."""
        call = self._transport.prepare(
            "POST", PATH, options, json=response_body(params, stream=True), accept="text/event-stream"
        )
        return ResponseEventStream(lambda: self._transport.send(call, stream=True))

    def retrieve(self, response_id: str, **options: Unpack[RequestOptions]) -> ModelResponse:
        return self._transport.request(ModelResponse, "GET", response_path(response_id), options)

    def delete(self, response_id: str, **options: Unpack[RequestOptions]) -> Deleted:
        return self._transport.request(Deleted, "DELETE", response_path(response_id), options)


class AsyncResponses:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport
        self.input_items = AsyncInputItems(transport)

    async def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> ModelResponse:
        body = response_body(params, stream=False)
        return await self._transport.request(ModelResponse, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> AsyncResponseEventStream:
        """An async iterator of events (no `await`): `async for event in ...stream(params)`."""
        call = self._transport.prepare(
            "POST", PATH, options, json=response_body(params, stream=True), accept="text/event-stream"
        )

        async def open_response() -> httpx.Response:
            return await self._transport.send(call, stream=True)

        return AsyncResponseEventStream(open_response)

    async def retrieve(self, response_id: str, **options: Unpack[RequestOptions]) -> ModelResponse:
        return await self._transport.request(ModelResponse, "GET", response_path(response_id), options)

    async def delete(self, response_id: str, **options: Unpack[RequestOptions]) -> Deleted:
        return await self._transport.request(Deleted, "DELETE", response_path(response_id), options)
