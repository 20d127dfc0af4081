"""The chat wire format's building blocks (messages, content parts, tools, sampling parameters),
shared by the completions endpoint and stored prompt templates so both validate alike.

What Mesh validates is what Mesh reads: roles, the fields templates render, the fields caps
price (`n`, `max_tokens`, …) and those translating providers map. Those are strict (no
coercion: `n: "2"` or `stream: "yes"` is a 422, not a guess). Everything else OpenAI defines,
or adds later, passes through unchanged: a content part, tool, tool call or tool choice of a
type Mesh does not know is kept as an `UnknownPart`/`UnknownTool`/… with its fields intact, so
OpenAI-compatible upstreams receive it as sent and translating providers can refuse it by name
(`part_unsupported`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from meshplatform.errors import BadRequest, ValidationDetail

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "must not contain NUL characters (\\u0000)")
    return value


# A string Mesh stores (usage ledger, templates) or routes on: PostgreSQL text cannot hold NUL.
NO_NUL_PATTERN = "^[^\\u0000]*$"  # documents the rule in the served schema (checked by _no_nul)
StoredStr = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
Identifier = Annotated[StoredStr, Field(max_length=256)]


def _json_integer(value: Any) -> Any:
    """JSON Schema's `integer` includes 1.0: take it as 1 (strings, booleans and 1.5 stay refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema defines one, without coercion from strings or booleans.
JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class OpenObject(BaseModel):
    """Objects keep fields we do not model, so they reach the upstream unchanged; the fields we
    do model are strict (JSON types as sent, never coerced)."""

    model_config = ConfigDict(extra="allow", strict=True)


# Tags of the tagged unions below. They appear in pydantic's error locations, so they are
# spelled to be recognisable there (chat_error_details drops them from the `loc` it reports).
TAG_PREFIX = "⟨"


def _tag(name: str) -> str:
    return f"{TAG_PREFIX}{name}⟩"


def _typed_as(known: frozenset[str], default: str | None = None) -> Callable[[Any], str | None]:
    """A discriminator: the object's `type` when Mesh knows it, "unknown" for any other string
    type (passed through), None (an error naming the field) for a value that is no such object."""

    def discriminate(value: Any) -> str | None:
        if isinstance(value, dict):
            kind = value.get("type", default)
        elif isinstance(value, BaseModel):
            kind = getattr(value, "type", default)
        else:
            return None
        if not isinstance(kind, str):
            return None
        return _tag(kind if kind in known else "unknown")

    return discriminate


class ImageUrl(OpenObject):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class VideoUrl(OpenObject):
    url: str


class InputAudio(OpenObject):
    data: str | None = None
    uri: str | None = None
    url: str | None = None
    format: Literal["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "pcm16", "pcm24"]


class FileRef(OpenObject):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class TextPart(OpenObject):
    type: Literal["text"]
    text: str


class ImagePart(OpenObject):
    type: Literal["image_url"]
    image_url: ImageUrl


class VideoPart(OpenObject):
    type: Literal["video_url"]
    video_url: VideoUrl
    fps: str | float | None = None


class AudioPart(OpenObject):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(OpenObject):
    """A document (PDF…) inline as `file_data` or by `file_id`."""

    type: Literal["file"]
    file: FileRef


class RefusalPart(OpenObject):
    """An assistant's refusal in the history."""

    type: Literal["refusal"]
    refusal: str


class UnknownPart(OpenObject):
    """A part type Mesh does not know (yet): forwarded unchanged to OpenAI-compatible upstreams;
    a translating provider answers `part_unsupported` for it."""

    type: str


# What a content part is once validated: translating providers match on these classes.
TypedPart = TextPart | ImagePart | VideoPart | AudioPart | FilePart | RefusalPart | UnknownPart

KNOWN_PART_TYPES = frozenset({"text", "image_url", "video_url", "input_audio", "file", "refusal"})

ContentPart = Annotated[
    Annotated[TextPart, Tag(_tag("text"))]
    | Annotated[ImagePart, Tag(_tag("image_url"))]
    | Annotated[VideoPart, Tag(_tag("video_url"))]
    | Annotated[AudioPart, Tag(_tag("input_audio"))]
    | Annotated[FilePart, Tag(_tag("file"))]
    | Annotated[RefusalPart, Tag(_tag("refusal"))]
    | Annotated[UnknownPart, Tag(_tag("unknown"))],
    Discriminator(
        _typed_as(KNOWN_PART_TYPES),
        custom_error_type="content_part_type",
        custom_error_message="a content part is an object with a string 'type'",
    ),
]


# A plain (smart) union: pydantic picks the branch by type in C, much faster than a callable
# discriminator; chat_error_details keeps only the branch that matches what was sent.
Content = str | list[ContentPart]
CONTENT_TYPE_MESSAGE = "content is a string or a list of content parts"
CONTENT_BRANCHES = ("str", "list[")


class ToolCallFunction(OpenObject):
    name: str
    arguments: str


class FunctionToolCall(OpenObject):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction
    thought_signature: str | None = None


class UnknownToolCall(OpenObject):
    """A tool call of another type (`custom`…), forwarded unchanged."""

    id: str
    type: str


ToolCall = Annotated[
    Annotated[FunctionToolCall, Tag(_tag("function"))] | Annotated[UnknownToolCall, Tag(_tag("unknown"))],
    Discriminator(
        _typed_as(frozenset({"function"}), default="function"),
        custom_error_type="tool_call_type",
        custom_error_message="a tool call is an object with a string 'type'",
    ),
]


class ChatMessage(OpenObject):
    role: Role
    content: Content | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None

    def parts(self) -> list[TypedPart]:
        """The content as typed parts (a string is one text part), for providers that translate it."""
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(type="text", text=self.content)]
        return list(self.content)


class ToolFunction(OpenObject):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(OpenObject):
    type: Literal["function"] = "function"
    function: ToolFunction


class UnknownTool(OpenObject):
    """A tool of another type (`custom`, hosted tools…), forwarded unchanged."""

    type: str


Tool = Annotated[
    Annotated[FunctionTool, Tag(_tag("function"))] | Annotated[UnknownTool, Tag(_tag("unknown"))],
    Discriminator(
        _typed_as(frozenset({"function"}), default="function"),
        custom_error_type="tool_type",
        custom_error_message="a tool is an object with a string 'type'",
    ),
]


class ToolChoiceFunction(OpenObject):
    name: str


class FunctionToolChoice(OpenObject):
    type: Literal["function"]
    function: ToolChoiceFunction


class UnknownToolChoice(OpenObject):
    """Another kind of choice (`allowed_tools`, `custom`…), forwarded unchanged."""

    type: str


def _tool_choice_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return _tag("mode")
    return _typed_as(frozenset({"function"}))(value)


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag(_tag("mode"))]
    | Annotated[FunctionToolChoice, Tag(_tag("function"))]
    | Annotated[UnknownToolChoice, Tag(_tag("unknown"))],
    Discriminator(
        _tool_choice_kind,
        custom_error_type="tool_choice_type",
        custom_error_message="tool_choice is 'none', 'auto', 'required' or an object with a string 'type'",
    ),
]


class ChatParameters(OpenObject):
    """Sampling and tool parameters a request sends, or a template gives as defaults.

    Count limits (stop sequences, tools) are checked before validation, from settings (see
    routing.schema.request_bounds_check), so they are not repeated here.
    """

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: JsonInt | None = Field(default=None, ge=1)
    max_completion_tokens: JsonInt | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: JsonInt | None = None
    n: JsonInt | None = Field(default=None, ge=1, le=128)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    response_format: dict[str, Any] | None = None
    user: Identifier | None = None


def part_unsupported(*, message_index: int, part_index: int, part_type: str, provider: str) -> BadRequest:
    """The 422 a translating provider answers for a content part it cannot send."""
    loc: list[str | int] = ["body", "messages", message_index, "content", part_index, "type"]
    msg = f"content part {part_index} of type {part_type!r} is not supported by provider {provider!r}"
    return BadRequest(
        f"Invalid request: messages.{message_index}.content.{part_index}: {msg}",
        param=f"messages.{message_index}.content.{part_index}",
        details=[{"loc": loc, "msg": msg, "type": "content_part_unsupported"}],
    )


def clean_loc(loc: tuple[str | int, ...]) -> list[str | int]:
    """Pydantic's location without the union tags (`⟨unknown⟩`…)."""
    return [part for part in loc if not (isinstance(part, str) and part.startswith(TAG_PREFIX))]


def content_branch_error(loc: list[str | int], root: Any) -> tuple[list[str | int], bool] | None:
    """For an error inside a message's `content` union: its location without the branch label,
    and whether it belongs to the branch that matches the value sent (the other is noise:
    `content.str: Input should be a valid string` for a list of parts). None otherwise."""
    for at in range(len(loc) - 1):
        label = loc[at + 1]
        if loc[at] == "content" and isinstance(label, str) and label.startswith(CONTENT_BRANCHES):
            sent = _follow(root, loc[: at + 1])
            matches = isinstance(sent, list) if label.startswith("list[") else isinstance(sent, str)
            return [*loc[: at + 1], *loc[at + 2 :]], matches
    return None


def describe_part_error(loc: list[str | int], msg: str, root: Any) -> str:
    """`msg`, prefixed with the content part it is about (its index and type) when it is one's."""
    for at in range(len(loc) - 1):
        if loc[at] == "content" and isinstance(loc[at + 1], int):
            part = _follow(root, loc[: at + 2])
            kind = part.get("type") if isinstance(part, dict) else None
            described = f"content part {loc[at + 1]}"
            described += f" of type {kind!r}" if isinstance(kind, str) else ""
            return f"{described}: {msg}"
    return msg


def _follow(root: Any, path: list[str | int]) -> Any:
    node = root
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def chat_error_details(
    error: ValidationError, raw: Any, prefix: tuple[str | int, ...] = ("body",)
) -> list[ValidationDetail]:
    """Pydantic's errors as the envelope's details: `loc` without union labels, only the errors
    of the `content` branch that matches what was sent (one error when it matches neither), and
    a content part's error names the part and its type."""
    details: list[ValidationDetail] = []
    neither: set[tuple[str | int, ...]] = set()
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        loc, msg, kind = clean_loc(item["loc"]), item["msg"], item["type"]
        branch = content_branch_error(loc, raw)
        if branch is not None:
            loc, matches = branch
            content_loc = tuple(loc[: loc.index("content") + 1]) if "content" in loc else tuple(loc)
            if not matches:
                if isinstance(_follow(raw, list(content_loc)), (str, list)) or content_loc in neither:
                    continue
                neither.add(content_loc)
                loc, msg, kind = list(content_loc), CONTENT_TYPE_MESSAGE, "content_type"
        details.append({"loc": [*prefix, *loc], "msg": describe_part_error(loc, msg, raw), "type": kind})
    return details
