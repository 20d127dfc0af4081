"""What a template may hold, as pydantic models: the chat schema's message rules, default parameters
and declared variables. (Our own models: templates_app does not import routing.)"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from templates_app.types import DeclaredVariable

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_MESSAGES = 500

# Request fields a template cannot default: Mesh's own, and those that change how the
# gateway itself handles the request (it reads them from the request only).
RESERVED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "template",
        "variables",
        "stream",
        "stream_options",
        "session_id",
        "models",
        "transforms",
        "async_mode",
        "timeout",
    }
)


class _Open(BaseModel):
    """Sub-objects keep fields we do not model, as the chat endpoint does."""

    model_config = ConfigDict(extra="allow")


class ImageUrl(_Open):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class VideoUrl(_Open):
    url: str


class InputAudio(_Open):
    data: str | None = None
    uri: str | None = None
    url: str | None = None
    format: Literal["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "pcm16", "pcm24"]


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageUrl


class VideoPart(_Open):
    type: Literal["video_url"]
    video_url: VideoUrl
    fps: str | float | None = None


class AudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | VideoPart | AudioPart, Field(discriminator="type")]


class ToolCallFunction(_Open):
    name: str
    arguments: str


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class TemplateMessage(_Open):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class ToolFunction(_Open):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: ToolFunction


class ToolChoice(_Open):
    type: Literal["function"]
    function: dict[str, Any]


class TemplateParams(_Open):
    """Default request parameters; unknown ones are kept and forwarded like unknown request fields."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = Field(default=None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value


class VariableDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, pattern=SLOT_NAME.pattern)
    default: str | None = None
    description: str = Field(default="", max_length=1000)


_messages = TypeAdapter(Annotated[list[TemplateMessage], Field(min_length=1, max_length=MAX_MESSAGES)])
_variables = TypeAdapter(list[VariableDeclaration])


class SchemaError(Exception):
    """Validation failed; `errors` are pydantic-style (loc relative to the validated value)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid")
        self.errors = errors


def _errors(error: ValidationError) -> SchemaError:
    return SchemaError(
        [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False)
        ]
    )


def messages_validate(value: Any) -> list[dict[str, Any]]:
    """The messages as given (unknown fields intact, nulls dropped), once they pass the chat rules."""
    try:
        _messages.validate_python(value)
    except ValidationError as error:
        raise _errors(error) from None
    return [{k: v for k, v in message.items() if v is not None} for message in value]


def params_validate(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError([{"loc": [], "msg": "Input should be an object", "type": "dict_type"}])
    reserved = sorted(RESERVED_PARAMS.intersection(value))
    if reserved:
        raise SchemaError(
            [
                {
                    "loc": [name],
                    "msg": "a template cannot set this; send it with the request",
                    "type": "forbidden",
                }
                for name in reserved
            ]
        )
    try:
        TemplateParams.model_validate(value)
    except ValidationError as error:
        raise _errors(error) from None
    return {k: v for k, v in value.items() if v is not None}


def variables_validate(value: Any) -> tuple[DeclaredVariable, ...]:
    try:
        declared = _variables.validate_python(value)
    except ValidationError as error:
        raise _errors(error) from None
    seen: set[str] = set()
    for index, variable in enumerate(declared):
        if variable.name in seen:
            raise SchemaError([{"loc": [index, "name"], "msg": "declared twice", "type": "duplicate"}])
        seen.add(variable.name)
    return tuple(DeclaredVariable(v.name, v.default, v.description) for v in declared)


def model_validate(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "/" not in value.strip("/") or len(value) > 200:
        raise SchemaError(
            [
                {
                    "loc": [],
                    "msg": "model ids look like 'provider/name', e.g. 'openai/gpt-4o'",
                    "type": "value_error",
                }
            ]
        )
    return value


_values = TypeAdapter(dict[str, Annotated[str, Field(strict=True)]])


def variable_values_validate(value: Any) -> dict[str, str]:
    """Values to render with: strings only, as the chat endpoint's `variables`."""
    try:
        return _values.validate_python(value)
    except ValidationError as error:
        raise _errors(error) from None
