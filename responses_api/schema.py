"""The wire schema of POST /v1/responses (OpenAI's Responses API), as pydantic models.

Like the completions schema: the body is parsed once against the JSON limits (NUL refused
anywhere, since input items are stored), the counts Mesh caps are checked before validation,
then pydantic validates strictly. Item, part and tool types Mesh does not translate are kept
(`UnknownItem`, `UnknownPart`, `UnknownTool`) so the translation refuses them by name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError

from meshplatform.chat_schema import TAG_PREFIX, Identifier, JsonInt, OpenObject, chat_error_details
from meshplatform.errors import BadRequest, ValidationDetail
from meshplatform.json_input import JsonLimits, json_loads_bounded
from routing.schema import ModelId, validation_error


def _tag(name: str) -> str:
    return f"{TAG_PREFIX}{name}⟩"


def _kind_of(known: frozenset[str], default: str | None = None) -> Any:
    """A discriminator over `type` (unknown strings → the pass-through branch, others → an error)."""

    def discriminate(value: Any) -> str | None:
        kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        if not isinstance(kind, str):
            return None
        return _tag(kind if kind in known else "unknown")

    return discriminate


class InputText(OpenObject):
    type: Literal["input_text"]
    text: str


class OutputText(OpenObject):
    """An assistant's earlier text (what a previous response's message item holds)."""

    type: Literal["output_text"]
    text: str


class Refusal(OpenObject):
    type: Literal["refusal"]
    refusal: str


class InputImage(OpenObject):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] = "auto"


class InputFile(OpenObject):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class UnknownPart(OpenObject):
    type: str


ContentPart = Annotated[
    Annotated[InputText, Tag(_tag("input_text"))]
    | Annotated[OutputText, Tag(_tag("output_text"))]
    | Annotated[Refusal, Tag(_tag("refusal"))]
    | Annotated[InputImage, Tag(_tag("input_image"))]
    | Annotated[InputFile, Tag(_tag("input_file"))]
    | Annotated[UnknownPart, Tag(_tag("unknown"))],
    Discriminator(
        _kind_of(frozenset({"input_text", "output_text", "refusal", "input_image", "input_file"})),
        custom_error_type="content_part_type",
        custom_error_message="a content part is an object with a string 'type'",
    ),
]


class MessageItem(OpenObject):
    """A message (`type` may be left out, as OpenAI's "easy input message" does)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(OpenObject):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=64)
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(OpenObject):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class ReasoningItem(OpenObject):
    """An earlier response's reasoning: kept in the stored input, not sent to chat upstreams."""

    type: Literal["reasoning"]
    summary: list[dict[str, Any]] = Field(default_factory=list)
    id: str | None = None


class UnknownItem(OpenObject):
    """An item type Mesh does not translate (built-in tool calls, item references…): refused by name."""

    type: str


InputItem = Annotated[
    Annotated[MessageItem, Tag(_tag("message"))]
    | Annotated[FunctionCallItem, Tag(_tag("function_call"))]
    | Annotated[FunctionCallOutputItem, Tag(_tag("function_call_output"))]
    | Annotated[ReasoningItem, Tag(_tag("reasoning"))]
    | Annotated[UnknownItem, Tag(_tag("unknown"))],
    Discriminator(
        _kind_of(frozenset({"message", "function_call", "function_call_output", "reasoning"}), "message"),
        custom_error_type="input_item_type",
        custom_error_message="an input item is an object with a string 'type'",
    ),
]


class FunctionTool(OpenObject):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class UnknownTool(OpenObject):
    """A built-in tool (`web_search`, `file_search`, `computer_use_preview`…)."""

    type: str


Tool = Annotated[
    Annotated[FunctionTool, Tag(_tag("function"))] | Annotated[UnknownTool, Tag(_tag("unknown"))],
    Discriminator(
        _kind_of(frozenset({"function"})),
        custom_error_type="tool_type",
        custom_error_message="a tool is an object with a string 'type'",
    ),
]


class FunctionToolChoice(OpenObject):
    type: Literal["function"]
    name: str


class OtherToolChoice(OpenObject):
    type: str


def _tool_choice_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return _tag("mode")
    return _kind_of(frozenset({"function"}))(value)  # type: ignore[no-any-return]


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag(_tag("mode"))]
    | Annotated[FunctionToolChoice, Tag(_tag("function"))]
    | Annotated[OtherToolChoice, Tag(_tag("unknown"))],
    Discriminator(
        _tool_choice_kind,
        custom_error_type="tool_choice_type",
        custom_error_message="tool_choice is 'none', 'auto', 'required' or an object with a string 'type'",
    ),
]


class TextFormat(OpenObject):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(OpenObject):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(OpenObject):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(OpenObject):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    model: ModelId | None = None
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: JsonInt | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    previous_response_id: Identifier | None = None
    store: bool = True
    stream: bool = False
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    user: Identifier | None = None
    # Mesh's own, as on chat completions.
    session_id: Identifier | None = None
    models: list[ModelId] | None = None
    # The JSON object as sent: what OpenAI receives when the request is forwarded natively.
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The request as sent (read it, never change it)."""
        return self._raw

    def items(self) -> list[InputItem]:
        """The input as items (a string is one user message)."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=[InputText(type="input_text", text=self.input)])]
        return list(self.input)


def _too_many(loc: list[str | int], limit: int, setting: str, what: str) -> ValidationDetail:
    return {"loc": ["body", *loc], "msg": f"at most {limit} {what} ({setting})", "type": "too_long"}


# OpenAI's fields for state kept upstream: Mesh keeps the conversation itself (previous_response_id).
UPSTREAM_STATE_FIELDS = {
    "background": "background responses are not supported: the answer comes in the reply (or stream)",
    "conversation": "conversations are kept by Mesh: continue with previous_response_id",
}


def _upstream_state_check(raw: dict[str, Any]) -> None:
    for name, why in UPSTREAM_STATE_FIELDS.items():
        if raw.get(name) not in (None, False):
            raise BadRequest(
                f"{name}: {why}.",
                param=name,
                details=[{"loc": ["body", name], "msg": why, "type": "unsupported"}],
                http_status=400,
                code="unsupported_parameter",
            )


def _bounds_check(raw: dict[str, Any], limits: dict[str, int]) -> None:
    problems: list[ValidationDetail] = []
    items, tools = raw.get("input"), raw.get("tools")
    if isinstance(items, list):
        if len(items) > limits["MESH_MAX_MESSAGES"]:
            problems.append(
                _too_many(["input"], limits["MESH_MAX_MESSAGES"], "MESH_MAX_MESSAGES", "input items")
            )
        else:
            for index, item in enumerate(items):
                content = item.get("content") if type(item) is dict else None
                if type(content) is list and len(content) > limits["MESH_MAX_CONTENT_PARTS"]:
                    where: list[str | int] = ["input", index, "content"]
                    limit = limits["MESH_MAX_CONTENT_PARTS"]
                    problems.append(_too_many(where, limit, "MESH_MAX_CONTENT_PARTS", "parts per item"))
    if isinstance(tools, list) and len(tools) > limits["MESH_MAX_TOOLS"]:
        problems.append(_too_many(["tools"], limits["MESH_MAX_TOOLS"], "MESH_MAX_TOOLS", "tools"))
    if problems:
        raise validation_error(problems)


def parse_responses_request(body: bytes, limits: dict[str, int]) -> ResponsesRequest:
    """The validated request from a JSON body (422 naming what is wrong, NUL refused anywhere:
    input items are stored in PostgreSQL, whose JSON cannot hold it)."""
    raw = json_loads_bounded(body, JsonLimits.from_settings(forbid_nul=True))
    if not isinstance(raw, dict):
        raise BadRequest(
            "Request body must be a JSON object.",
            param="body",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    _bounds_check(raw, limits)
    _upstream_state_check(raw)
    try:
        request = ResponsesRequest.model_validate(raw)
    except ValidationError as error:
        raise validation_error(_input_branch_only(chat_error_details(error, raw), raw)) from None
    request._raw = raw
    return request


INPUT_TYPE_MESSAGE = "input is a string or a list of input items"


def _input_branch_only(details: list[ValidationDetail], raw: dict[str, Any]) -> list[ValidationDetail]:
    """`input` is a union: keep the errors of the branch matching what was sent, without its label
    (`input.1.role`, not `input.list[...].1.role`), or one error when it matches neither."""
    sent = raw.get("input")
    kept: list[ValidationDetail] = []
    for detail in details:
        loc = detail["loc"]
        label = loc[2] if len(loc) > 2 and loc[1] == "input" else None
        if not isinstance(label, str) or not label.startswith(("str", "list[")):
            kept.append(detail)
            continue
        if isinstance(sent, str) == (label == "str") and isinstance(sent, (str, list)):
            kept.append({**detail, "loc": [*loc[:2], *loc[3:]]})
        elif not isinstance(sent, (str, list)) and not any(d["loc"] == ["body", "input"] for d in kept):
            kept.append({"loc": ["body", "input"], "msg": INPUT_TYPE_MESSAGE, "type": "input_type"})
    return kept
