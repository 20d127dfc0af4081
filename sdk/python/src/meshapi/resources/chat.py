"""`client.chat.completions`: create (one JSON answer) and stream (an iterator of chunks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

import httpx

from meshapi._base import RequestOptions
from meshapi._streaming import AsyncStream, Stream
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.chat import ChatCompletionParams
from meshapi.types.chat_responses import ChatCompletion

ParamsLike = ChatCompletionParams | Mapping[str, Any]
PATH = "/v1/chat/completions"


def as_params(params: ParamsLike) -> ChatCompletionParams:
    return params if isinstance(params, ChatCompletionParams) else ChatCompletionParams.model_validate(params)


def completion_body(params: ParamsLike, *, stream: bool) -> dict[str, Any]:
    chat = as_params(params)
    if chat.async_mode:
        raise ValueError("async_mode runs the request as a job: use client.jobs.create(params).")
    return chat.to_body(stream=stream)


class Completions:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> ChatCompletion:
        """One completion as a JSON object (`params.stream` is ignored: use `stream()` to stream)."""
        body = completion_body(params, stream=False)
        return self._transport.request(ChatCompletion, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> Stream:
        """An iterator of chunks; the request is sent (and retried) when iteration starts."""
        call = self._transport.prepare(
            "POST", PATH, options, json=completion_body(params, stream=True), accept="text/event-stream"
        )

        def open_response() -> httpx.Response:
            return self._transport.send(call, stream=True)

        return Stream(open_response)


class AsyncCompletions:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> ChatCompletion:
        body = completion_body(params, stream=False)
        return await self._transport.request(ChatCompletion, "POST", PATH, options, json=body)

    def stream(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> AsyncStream:
        """An async iterator of chunks (no `await`): `async for chunk in ...stream(params)`."""
        call = self._transport.prepare(
            "POST", PATH, options, json=completion_body(params, stream=True), accept="text/event-stream"
        )

        async def open_response() -> httpx.Response:
            return await self._transport.send(call, stream=True)

        return AsyncStream(open_response)


class Chat:
    def __init__(self, transport: SyncTransport) -> None:
        self.completions = Completions(transport)


class AsyncChat:
    def __init__(self, transport: AsyncTransport) -> None:
        self.completions = AsyncCompletions(transport)
