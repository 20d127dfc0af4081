"""The served OpenAPI 3.1 document: DRF's management APIs (drf-spectacular) plus the proxy endpoints,
whose schemas come from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.openapi import MODELS as JOBS_MODELS
from jobs.openapi import jobs_paths
from meshplatform.chat_schema import ChatMessage
from responses_api.openapi import MODELS as RESPONSES_MODELS
from responses_api.openapi import responses_paths
from routing.compare.openapi import compare_paths, compare_schemas
from routing.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from routing.media_openapi import MODELS as MEDIA_MODELS
from routing.media_openapi import media_paths
from routing.schema import ChatCompletionRequest

REF = "#/components/schemas/{model}"


class PromptTokensDetails(BaseModel):
    cached_tokens: int | None = None


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ChatCompletionChoice(BaseModel):
    index: int
    message: ChatMessage | None = None
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: dict[str, Any]
    finish_reason: FinishReason | Literal["error"] | None = None


class ValidationErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProviderError(BaseModel):
    """What the upstream itself answered (its status, message, and its own code and type when given)."""

    provider: str
    status: int | None = None
    message: str | None = None
    code: str | None = None
    type: str | None = None


ErrorCode = Literal[
    "unauthorized",
    "forbidden",
    "not_found",
    "model_not_found",
    "validation_error",
    "unprocessable_entity",
    "rate_limit_exceeded",
    "spend_limit_exceeded",
    "conflict",
    "upstream_error",
    "provider_not_available",
    "gateway_timeout",
    "internal_error",
    "bad_request",
    "request_timeout",
]


OpenAIErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "conflict_error",
    "insufficient_quota",
    "rate_limit_error",
    "timeout_error",
    "api_error",
]


class ErrorBody(BaseModel):
    code: ErrorCode | str = Field(
        description="Mesh's code; an upstream's own 400/404/413/422 carries the upstream's code instead "
        "(e.g. `context_length_exceeded`, `content_filter`)."
    )
    message: str
    param: str | None = None
    details: list[ValidationErrorDetail] | None = None
    provider_error: ProviderError | None = None
    retry_after_seconds: int | None = None
    type: OpenAIErrorType = Field(
        description="OpenAI's error type for the status, for clients that branch on it."
    )


class ErrorEnvelope(BaseModel):
    error: ErrorBody
    request_id: str


class ChatCompletionChunk(BaseModel):
    """One SSE `data:` event; a failure after the first byte ends the stream with `error` set."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    error: ErrorBody | None = None


class ModelPricing(BaseModel):
    """USD per million tokens, as decimal strings (no float ever touches money)."""

    input_per_mtok_usd: str
    output_per_mtok_usd: str
    cached_input_per_mtok_usd: str


class ModelInfo(BaseModel):
    id: str = Field(description="A catalog id (`provider/name`) or, with `alias_for`, a tenant alias.")
    object: Literal["model"]
    created: int
    owned_by: str
    context_window: int
    pricing: ModelPricing
    alias_for: str | None = Field(default=None, description="The catalog id this tenant alias names.")
    kind: Literal["chat", "embedding", "image"] = Field(
        default="chat", description="The endpoint the model serves: chat completions, embeddings or images."
    )
    dimensions: int | None = Field(default=None, description="Embedding models: the default vector length.")


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelInfo]


ERROR_STATUSES = {
    "401": "Missing, malformed, or unknown bearer token.",
    "402": "The key's or tenant's spend cap has been reached.",
    "403": "The key is revoked, expired or inactive, the tenant is suspended, or the model is not allowed.",
    "404": "Unknown model, template, key or path.",
    "405": "The method is not allowed on this path.",
    "408": "The body arrived too slowly or stopped short of its Content-Length.",
    "409": "The object is already finished (jobs, batches) or still in use (files); or a request "
    "with this Idempotency-Key still runs, or ran as a stream.",
    "413": "The body exceeds the configured size.",
    "415": "The body is not application/json.",
    "422": "The body violates the schema (details list each violation).",
    "400": "The upstream provider rejected the request (its status, code and param are kept), or the "
    "Host header is not one this gateway serves (ALLOWED_HOSTS).",
    "429": "RPM or RPD limit reached, or the upstream's own rate limit (Retry-After says when to retry).",
    "502": "The upstream provider failed (its 5xx, or its 401/403: the deployment's credentials).",
    "503": "No configured provider serves the model.",
    "504": "The upstream did not answer within the request's timeout.",
}


def _schemas() -> dict[str, Any]:
    components: dict[str, Any] = {}
    models: tuple[type[BaseModel], ...] = (
        ChatCompletionRequest,
        ChatCompletionResponse,
        ChatCompletionChunk,
        ErrorEnvelope,
        ModelList,
        *JOBS_MODELS,
        *RESPONSES_MODELS,
        *MEDIA_MODELS,
    )
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _errors() -> dict[str, Any]:
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    return {status: {"description": text, "content": envelope} for status, text in ERROR_STATUSES.items()}


def _proxy_paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": {
            "post": {
                "operationId": "create-chat-completion",
                "parameters": [IDEMPOTENCY_KEY],
                "summary": "Create a chat completion (OpenAI-compatible)",
                "description": (
                    "Mesh extensions: `template` + `variables` expand a stored prompt template, "
                    "`session_id` groups usage, `models` lists fallbacks, `async_mode` answers 202 with a "
                    "`ChatCompletionJob` (optional `webhook_url`). Unknown fields are forwarded "
                    "to OpenAI-compatible upstreams. With `stream=true` the answer is Server-Sent Events "
                    "of `ChatCompletionChunk`, ending with `data: [DONE]`."
                ),
                "tags": ["chat"],
                "security": [{"HTTPBearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "A completion, or SSE chunks when `stream=true`.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChatCompletionResponse"}
                            },
                            # One Server-Sent Event: `data` is a ChatCompletionChunk as JSON, and
                            # the last one is `[DONE]`.
                            "text/event-stream": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {
                                        "data": {
                                            "type": "string",
                                            "contentSchema": {
                                                "$ref": "#/components/schemas/ChatCompletionChunk"
                                            },
                                        },
                                        "event": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                    "202": {
                        "description": "`async_mode=true`: the job, queued (poll GET /v1/jobs/{id}).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionJob"}}
                        },
                    },
                    **_errors(),
                },
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "list-models",
                "summary": "Models of configured providers, with prices",
                "tags": ["models"],
                "security": [{"HTTPBearer": []}],
                "responses": {
                    "200": {
                        "description": "The catalog",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}
                        },
                    },
                    "401": _errors()["401"],
                },
            }
        },
        "/v1/models/{model}": {
            "get": {
                "operationId": "retrieve-model",
                "summary": "One model (OpenAI's retrieve): a catalog id, tenant alias or bare upstream name",
                "tags": ["models"],
                "security": [{"HTTPBearer": []}],
                "parameters": [
                    {
                        "name": "model",
                        "in": "path",
                        "required": True,
                        "description": "May contain `/`, e.g. openrouter/meta-llama/llama-3.3-70b-instruct.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The model",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ModelInfo"}}
                        },
                    },
                    "401": _errors()["401"],
                    "404": _errors()["404"],
                },
            }
        },
    }


# Answers every operation can give whatever its own documentation says: the envelope's statuses.
EVERY_OPERATION_ERRORS = ("400", "401", "403", "404", "405", "408", "413", "415", "422", "429")


def _document_error_answers(paths: dict[str, Any]) -> None:
    """Every operation documents the error envelope for each status the gateway can answer it
    with (ALLOWED_HOSTS, auth, limits, body checks), so clients and schemathesis know them."""
    errors = _errors()
    for operations in paths.values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in EVERY_OPERATION_ERRORS:
                operation["responses"].setdefault(status, errors.get(status) or _generic_error(status))


def _generic_error(status: str) -> dict[str, Any]:
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    return {"description": "Error envelope.", "content": envelope}


def add_proxy_endpoints(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the proxy's paths and schemas, bearer auth for everything."""
    # Routes accept an optional trailing slash; the document names each path once, without it.
    generated = {path.rstrip("/"): item for path, item in result.get("paths", {}).items()}
    result["paths"] = {
        **_proxy_paths(),
        **compare_paths(_errors()),
        **media_paths(_errors()),
        **jobs_paths(_errors()),
        **responses_paths(_errors()),
        **generated,
    }
    _document_error_answers(result["paths"])
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas())
    components["schemas"].update(compare_schemas())
    components.setdefault("securitySchemes", {})["HTTPBearer"] = {"type": "http", "scheme": "bearer"}
    return result
