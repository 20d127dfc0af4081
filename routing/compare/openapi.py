"""OpenAPI entries of POST /v1/compare: the request (the chat request with `models` to compare),
the side-by-side answer and the stream's events; routing/openapi.py merges them into the document."""

from __future__ import annotations

import copy
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, Field

from routing.schema import ChatCompletionRequest

REF = "#/components/schemas/{model}"


class CompareUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = Field(description="Part of prompt_tokens, billed at the cached rate.")


class CompareResult(BaseModel):
    """One model's side: its `completion`, or its `error` (the envelope's error object)."""

    model: str = Field(description="The model as named in `models`.")
    request_id: str = Field(description="This model's run: its own usage event (GET /v1/usage).")
    status: int = Field(description="200, or the HTTP status this model's run failed with.")
    completion: dict[str, Any] | None = Field(
        description="OpenAI's `chat.completion` (a ChatCompletionResponse); null when the run failed."
    )
    error: dict[str, Any] | None = Field(description="An ErrorEnvelope's `error`; null on success.")
    latency_ms: int = Field(description="From the comparison's start to this model's whole answer.")
    ttft_ms: int | None = Field(
        description="Time to first token: the first content chunk when streamed; without `stream`, "
        "the whole answer's time (its first token arrives with the rest)."
    )
    usage: CompareUsage | None
    cost_usd: str = Field(description="This run's cost at catalog prices, a decimal string.")


class CompareResponse(BaseModel):
    object: Literal["compare"]
    comparison_id: str = Field(
        description="On every run's usage event; GET /v1/usage?comparison_id= sums them."
    )
    created: int
    session_id: str | None
    results: list[CompareResult] = Field(description="One per model, in the order of `models`.")
    total_cost_usd: str = Field(description="The runs' costs summed, a decimal string.")


class CompareChunkEvent(BaseModel):
    """A streamed comparison's event for one model's `chat.completion.chunk`."""

    object: Literal["compare.chunk"]
    model: str
    request_id: str
    chunk: dict[str, Any] = Field(
        description="A ChatCompletionChunk of that model, as /v1/chat/completions streams it."
    )


class CompareErrorEvent(BaseModel):
    """A model whose run failed before its first chunk."""

    object: Literal["compare.error"]
    model: str
    request_id: str
    status: int
    error: dict[str, Any]


class CompareSummaryEvent(BaseModel):
    """The last event before `[DONE]`: the CompareResponse (without completions), every model over."""

    object: Literal["compare.summary"]
    comparison_id: str
    created: int
    session_id: str | None
    results: list[CompareResult]
    total_cost_usd: str


MODELS: tuple[type[BaseModel], ...] = (
    CompareResponse,
    CompareChunkEvent,
    CompareErrorEvent,
    CompareSummaryEvent,
)


def compare_request_schema() -> dict[str, Any]:
    """ChatCompletionRequest's schema with `models` (the models to compare) instead of `model`."""
    schema = copy.deepcopy(ChatCompletionRequest.model_json_schema(ref_template=REF, mode="validation"))
    schema.pop("$defs", None)
    properties = schema["properties"]
    models = properties["models"]
    item = next(
        (branch["items"] for branch in models.get("anyOf", []) if branch.get("type") == "array"), None
    )
    properties.pop("model", None)
    properties.pop("async_mode", None)
    properties.pop("webhook_url", None)
    properties["models"] = {
        "type": "array",
        "items": item or {"type": "string"},
        "minItems": 2,
        "maxItems": settings.MESH_COMPARE_MAX_MODELS,
        "uniqueItems": True,
        "description": "The models to compare (2 to MESH_COMPARE_MAX_MODELS), each a catalog id, "
        "tenant alias or bare name naming a different model. Each runs the rest of the request.",
    }
    schema["required"] = sorted({*schema.get("required", []), "models"})
    schema["title"] = "CompareRequest"
    return schema


def compare_schemas() -> dict[str, Any]:
    components: dict[str, Any] = {"CompareRequest": compare_request_schema()}
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def _event(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def compare_paths(errors: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v1/compare": {
            "post": {
                "operationId": "create-comparison",
                "summary": "Run one chat request on several models, answers side by side",
                "description": (
                    "The body is a chat request whose `models` lists the models to compare. Each model's "
                    "run is a chat completion of its own (its own `request_id` and usage event, all "
                    "under the answer's `comparison_id` and the request's `session_id`), run "
                    "concurrently; one failing does not fail the others. A comparison of N models "
                    "counts as N requests of the key's RPM/RPD, all or none (429 as a whole), and the "
                    "spend caps hold the sum of the runs' worst cases (402 as a whole). With "
                    "`stream=true`: Server-Sent Events, each `data` a CompareChunkEvent (a model's "
                    "chunk, tagged with the model) or CompareErrorEvent, then one CompareSummaryEvent "
                    "and `data: [DONE]`."
                ),
                "tags": ["compare"],
                "security": [{"HTTPBearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _event("CompareRequest")}},
                },
                "responses": {
                    "200": {
                        "description": "Every model's answer, or the event stream when `stream=true`.",
                        "content": {
                            "application/json": {"schema": _event("CompareResponse")},
                            "text/event-stream": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {
                                        "data": {
                                            "type": "string",
                                            "contentSchema": {
                                                "oneOf": [
                                                    _event("CompareChunkEvent"),
                                                    _event("CompareErrorEvent"),
                                                    _event("CompareSummaryEvent"),
                                                ]
                                            },
                                        },
                                        "event": {"type": "string"},
                                    },
                                }
                            },
                        },
                    },
                    **{
                        status: errors[status] for status in ("401", "402", "403", "404", "422", "429", "503")
                    },
                },
            }
        }
    }
