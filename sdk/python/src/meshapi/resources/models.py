"""`client.models`: the catalog (list, retrieve); ids contain a slash (`openai/gpt-4o`)."""

from __future__ import annotations

from typing import Unpack
from urllib.parse import quote

from meshapi._base import RequestOptions
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.models import Model
from meshapi.types.shared import ListPage


def model_path(model_id: str) -> str:
    if not model_id:
        raise ValueError("model_id must not be empty")
    return "/v1/models/" + quote(model_id, safe="/")


class Models:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def list(self, **options: Unpack[RequestOptions]) -> ListPage[Model]:
        return self._transport.request(ListPage[Model], "GET", "/v1/models", options)

    def retrieve(self, model_id: str, **options: Unpack[RequestOptions]) -> Model:
        return self._transport.request(Model, "GET", model_path(model_id), options)


class AsyncModels:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def list(self, **options: Unpack[RequestOptions]) -> ListPage[Model]:
        return await self._transport.request(ListPage[Model], "GET", "/v1/models", options)

    async def retrieve(self, model_id: str, **options: Unpack[RequestOptions]) -> Model:
        return await self._transport.request(Model, "GET", model_path(model_id), options)
