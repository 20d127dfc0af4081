"""The Responses API (/v1/responses): request parameters, the response object, its stream events
and stored input items."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from meshapi.types._base import Request, Response


class ResponseCreateParams(Request):
    """`POST /v1/responses`. `input` is a string or a list of items (messages, `function_call_output`…);
    `previous_response_id` continues a stored response on any provider; `session_id` and `models`
    are Mesh's, as on chat completions. Unknown keyword arguments are sent as they are."""

    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    session_id: str | None = None
    models: list[str] | None = None

    def to_body(self, **overrides: Any) -> dict[str, Any]:
        """The JSON body: fields you set (None values dropped), plus `overrides`."""
        body = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        body.update(overrides)
        return body


class ResponseContent(Response):
    """A part of an output message: `output_text` (with `text`) or `refusal`."""

    type: str = ""
    text: str | None = None
    refusal: str | None = None
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class ResponseOutputItem(Response):
    """One output item: a `message` (role, content), a `function_call` (call_id, name, arguments),
    `reasoning` (summary), or a built-in tool's call (its own fields, kept as attributes)."""

    id: str | None = None
    type: str = ""
    status: str | None = None
    role: str | None = None
    content: list[ResponseContent] = Field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list)


class ResponseUsage(Response):
    input_tokens: int = 0
    output_tokens: int = 0
    """Including reasoning tokens (billed as output)."""
    total_tokens: int = 0
    input_tokens_details: dict[str, int] = Field(default_factory=dict)
    output_tokens_details: dict[str, int] = Field(default_factory=dict)

    @property
    def reasoning_tokens(self) -> int:
        return self.output_tokens_details.get("reasoning_tokens", 0)

    @property
    def cached_tokens(self) -> int:
        return self.input_tokens_details.get("cached_tokens", 0)


class ResponseError(Response):
    code: str | None = None
    message: str = ""


class ModelResponse(Response):
    """OpenAI's `response` object; `model` is the catalog id that served it."""

    id: str
    object: str = "response"
    created_at: int | None = None
    status: str = "completed"
    """completed, incomplete (see `incomplete_details`), failed (see `error`) or in_progress."""
    model: str | None = None
    output: list[ResponseOutputItem] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None

    @property
    def output_text(self) -> str:
        """The text of every output message, joined."""
        return "".join(
            part.text or ""
            for item in self.output
            if item.type == "message"
            for part in item.content
            if part.type == "output_text"
        )

    @property
    def function_calls(self) -> list[ResponseOutputItem]:
        return [item for item in self.output if item.type == "function_call"]


class ResponseStreamEvent(Response):
    """One event of a streamed response (`type` says which; the fields it carries are set)."""

    type: str
    sequence_number: int | None = None
    response: ModelResponse | None = None
    output_index: int | None = None
    content_index: int | None = None
    item_id: str | None = None
    item: ResponseOutputItem | None = None
    delta: str | None = None
    text: str | None = None
    arguments: str | None = None


class ResponseInputItem(Response):
    """A stored input item: a `message` (role, content parts), `function_call`, `function_call_output`…"""

    id: str | None = None
    type: str = "message"
    role: str | None = None
    status: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[dict[str, Any]] | None = None
