"""`client.embeddings.create(params)` and `client.images.generate(params)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from meshapi._base import RequestOptions
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.embeddings import EmbeddingList, EmbeddingParams
from meshapi.types.images import ImageGenerationParams, ImagesResponse

EmbeddingParamsLike = EmbeddingParams | Mapping[str, Any]
ImageParamsLike = ImageGenerationParams | Mapping[str, Any]
EMBEDDINGS_PATH = "/v1/embeddings"
IMAGES_PATH = "/v1/images/generations"


def embedding_body(params: EmbeddingParamsLike) -> dict[str, Any]:
    typed = params if isinstance(params, EmbeddingParams) else EmbeddingParams.model_validate(params)
    return typed.to_body()


def image_body(params: ImageParamsLike) -> dict[str, Any]:
    typed = (
        params if isinstance(params, ImageGenerationParams) else ImageGenerationParams.model_validate(params)
    )
    return typed.to_body()


class Embeddings:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(self, params: EmbeddingParamsLike, **options: Unpack[RequestOptions]) -> EmbeddingList:
        body = embedding_body(params)
        return self._transport.request(EmbeddingList, "POST", EMBEDDINGS_PATH, options, json=body)


class AsyncEmbeddings:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(self, params: EmbeddingParamsLike, **options: Unpack[RequestOptions]) -> EmbeddingList:
        body = embedding_body(params)
        return await self._transport.request(EmbeddingList, "POST", EMBEDDINGS_PATH, options, json=body)


class Images:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def generate(self, params: ImageParamsLike, **options: Unpack[RequestOptions]) -> ImagesResponse:
        body = image_body(params)
        return self._transport.request(ImagesResponse, "POST", IMAGES_PATH, options, json=body)


class AsyncImages:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def generate(self, params: ImageParamsLike, **options: Unpack[RequestOptions]) -> ImagesResponse:
        body = image_body(params)
        return await self._transport.request(ImagesResponse, "POST", IMAGES_PATH, options, json=body)
