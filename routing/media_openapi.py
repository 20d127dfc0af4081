"""OpenAPI entries of POST /v1/embeddings and POST /v1/images/generations: the request models that
validate them (routing.media_schema) and pydantic models of the answers; routing/openapi.py merges
them into the served document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from routing.media_schema import EmbeddingsRequest, ImagesRequest

REF = "#/components/schemas/{model}"


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="The vector; with `encoding_format=base64`, its little-endian float32s in base64."
    )


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["list"]
    data: list[Embedding]
    model: str = Field(description="The catalog id that served.")
    usage: EmbeddingsUsage


class Image(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str | None = Field(default=None, description="The upstream's URL (it expires as the upstream says).")
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    created: int
    data: list[Image]


MODELS: tuple[type[BaseModel], ...] = (EmbeddingsRequest, EmbeddingsResponse, ImagesRequest, ImagesResponse)


def _operation(
    operation_id: str, summary: str, description: str, request: str, response: str, errors: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["media"],
            "security": [{"HTTPBearer": []}],
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=request)}}},
            },
            "responses": {
                "200": {
                    "description": "The answer, in OpenAI's shape.",
                    "content": {"application/json": {"schema": {"$ref": REF.format(model=response)}}},
                },
                **errors,
            },
        }
    }


def media_paths(errors: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v1/embeddings": _operation(
            "create-embeddings",
            "Create embeddings (OpenAI-compatible)",
            "`model` is an embedding model of the catalog (a chat model is a 400 `model_not_supported`); "
            "without one, the key's default model if it is an embedding model, else a 422. Billed at the "
            "model's input price per token (Gemini's, which reports none, estimated from the texts). "
            "Mesh extension: `session_id`. Unknown fields are forwarded to OpenAI-compatible upstreams.",
            "EmbeddingsRequest",
            "EmbeddingsResponse",
            errors,
        ),
        "/v1/images/generations": _operation(
            "create-images",
            "Generate images (OpenAI-compatible)",
            "`model` is an image model of the catalog; `size` and `quality` must be ones it prices "
            "(or `auto`). Billed per image returned at the catalog's price for that size and quality; "
            "a hard spend cap holds `n` images at that price first. `url` answers are the upstream's "
            "own URLs. Mesh extension: `session_id`.",
            "ImagesRequest",
            "ImagesResponse",
            errors,
        ),
    }
