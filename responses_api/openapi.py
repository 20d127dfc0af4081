"""OpenAPI entries of the Responses API: pydantic models of the objects the views render and the
paths; routing/openapi.py merges them into the served document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from responses_api.schema import ResponsesRequest


class OutputText(BaseModel):
    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]]
    logprobs: list[dict[str, Any]] | None = None


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"]
    content: list[dict[str, Any]] = Field(description="`output_text` or `refusal` parts.")


class FunctionCall(BaseModel):
    id: str
    type: Literal["function_call"]
    status: Literal["in_progress", "completed", "incomplete"]
    call_id: str
    name: str
    arguments: str = Field(description="The arguments as a JSON string.")


class Reasoning(BaseModel):
    id: str
    type: Literal["reasoning"]
    summary: list[dict[str, Any]]


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int = Field(description="Including reasoning tokens (billed as output).")
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


class ResponseObject(BaseModel):
    """OpenAI's `response` object; `model` is the catalog id that served it."""

    id: str = Field(description="`resp_…`, stored for the key's tenant unless `store` was false.")
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    background: bool
    error: ResponseError | None
    incomplete_details: dict[str, str] | None
    model: str
    output: list[OutputMessage | FunctionCall | Reasoning | dict[str, Any]]
    usage: ResponseUsage | None
    instructions: str | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: dict[str, Any]
    store: bool
    temperature: float
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_p: float
    truncation: Literal["disabled"]
    user: str | None


class ResponseStreamEvent(BaseModel):
    """One Server-Sent Event (`event:` is its `type`): `response.created`, `response.in_progress`,
    `response.output_item.added`/`.done`, `response.content_part.added`/`.done`,
    `response.output_text.delta`/`.done`, `response.function_call_arguments.delta`/`.done`,
    `response.reasoning_summary_text.delta`/`.done`, then `response.completed`,
    `response.incomplete` or `response.failed` (those carry the whole `response`)."""

    model_config = {"extra": "allow"}

    type: str
    sequence_number: int


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"]
    deleted: bool


class ResponseInputItemList(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]] = Field(description="Input items (message, function_call, …) with ids.")
    first_id: str | None
    last_id: str | None
    has_more: bool


class ResponseCreateRequest(ResponsesRequest):
    """POST /v1/responses (OpenAI's fields; `session_id` and `models` are Mesh's, as on chat)."""


MODELS: tuple[type[BaseModel], ...] = (
    ResponseCreateRequest,
    ResponseObject,
    ResponseStreamEvent,
    ResponseDeleted,
    ResponseInputItemList,
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _op(op_id: str, summary: str, ok: dict[str, Any], errors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": ["responses"],
        "security": [{"HTTPBearer": []}],
        **extra,
        "responses": {"200": ok, **errors},
    }


RESPONSE_ID = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
PAGE = [
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    {
        "name": "order",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["asc", "desc"]},
    },
]


def responses_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The paths, with `errors` (the shared ErrorEnvelope responses by status)."""
    stream_event = {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": {"type": "string"},
                "data": {"type": "string", "contentSchema": _ref("ResponseStreamEvent")},
            },
        }
    }
    created = _json("ResponseObject", "The response, or its stream events when `stream=true`.")
    created["content"]["text/event-stream"] = stream_event
    lookup: dict[str, Any] = {s: errors[s] for s in ("400", "401", "403", "404") if s in errors}
    return {
        "/v1/responses": {
            "post": _op(
                "create-response",
                "Create a model response (OpenAI's Responses API, on every provider)",
                created,
                errors,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ResponseCreateRequest")}},
                },
                description=(
                    "Translated to a chat completion for every provider (so `anthropic/*` and `gemini/*` "
                    "work too); `previous_response_id` continues a stored response of the tenant on any "
                    "provider. Built-in tools are refused with a 400 naming `tools[i].type`."
                ),
            )
        },
        "/v1/responses/{response_id}": {
            "get": _op(
                "retrieve-response", "A stored response", _json("ResponseObject", "The response"), lookup,
                parameters=RESPONSE_ID,
            ),
            "delete": _op(
                "delete-response", "Delete a stored response", _json("ResponseDeleted", "Deleted"), lookup,
                parameters=RESPONSE_ID,
            ),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "list-response-input-items",
                "The input items of a stored response",
                _json("ResponseInputItemList", "A page"),
                lookup,
                parameters=[*RESPONSE_ID, *PAGE],
            )
        },
    }  # fmt: skip
