"""Sending one call, with its retries: `SyncTransport` over `httpx.Client`, `AsyncTransport` over
`httpx.AsyncClient`. Errors come back as the SDK's exceptions; a stream is returned once open."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from meshapi._base import ClientConfig, ModelT, PreparedCall, RequestOptions, prepare_call, transport_errors
from meshapi._errors import error_from_response
from meshapi._retry import async_retrying, sync_retrying
from meshapi.types._base import Response


def parsed(cast: type[ModelT], response: httpx.Response) -> ModelT:
    result = cast.model_validate(response.json())
    if isinstance(result, Response):
        result._request_id = response.headers.get("x-request-id")
    return result


class SyncTransport:
    def __init__(self, config: ClientConfig, http_client: httpx.Client | None = None) -> None:
        self.config = config
        self.owns_http = http_client is None
        self.http = http_client if http_client is not None else httpx.Client()

    def prepare(self, method: str, path: str, options: RequestOptions, **kwargs: Any) -> PreparedCall:
        return prepare_call(self.http, self.config, method, path, options=options, **kwargs)

    def send(self, call: PreparedCall, *, stream: bool = False) -> httpx.Response:
        """The first successful answer (read unless `stream`); retryable failures are retried."""
        response: httpx.Response | None = None
        for attempt in sync_retrying(call.max_retries):
            with attempt:
                response = self._send_once(call, stream=stream)
        assert response is not None  # tenacity either returned a success or raised
        return response

    def _send_once(self, call: PreparedCall, *, stream: bool) -> httpx.Response:
        with transport_errors():
            response = self.http.send(call.request, stream=stream)
            if response.is_error:
                try:
                    response.read()
                finally:
                    response.close()
                raise error_from_response(response)
        return response

    def request(
        self,
        cast: type[ModelT],
        method: str,
        path: str,
        options: RequestOptions,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> ModelT:
        call = self.prepare(method, path, options, json=json, params=params, files=files, data=data)
        return parsed(cast, self.send(call))

    def request_bytes(self, path: str, options: RequestOptions) -> bytes:
        response = self.send(self.prepare("GET", path, options, accept="*/*"))
        return response.content

    def close(self) -> None:
        if self.owns_http:
            self.http.close()


class AsyncTransport:
    def __init__(self, config: ClientConfig, http_client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.owns_http = http_client is None
        self.http = http_client if http_client is not None else httpx.AsyncClient()

    def prepare(self, method: str, path: str, options: RequestOptions, **kwargs: Any) -> PreparedCall:
        return prepare_call(self.http, self.config, method, path, options=options, **kwargs)

    async def send(self, call: PreparedCall, *, stream: bool = False) -> httpx.Response:
        response: httpx.Response | None = None
        async for attempt in async_retrying(call.max_retries):
            with attempt:
                response = await self._send_once(call, stream=stream)
        assert response is not None
        return response

    async def _send_once(self, call: PreparedCall, *, stream: bool) -> httpx.Response:
        with transport_errors():
            response = await self.http.send(call.request, stream=stream)
            if response.is_error:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                raise error_from_response(response)
        return response

    async def request(
        self,
        cast: type[ModelT],
        method: str,
        path: str,
        options: RequestOptions,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> ModelT:
        call = self.prepare(method, path, options, json=json, params=params, files=files, data=data)
        return parsed(cast, await self.send(call))

    async def request_bytes(self, path: str, options: RequestOptions) -> bytes:
        response = await self.send(self.prepare("GET", path, options, accept="*/*"))
        return response.content

    async def close(self) -> None:
        if self.owns_http:
            await self.http.aclose()
