"""The wire schema of POST /v1/chat/completions: the union of both seed specs, as pydantic models.

Validation is declarative and its errors are the seeds' pydantic-style `details`.
Unknown top-level fields are allowed: they are forwarded unchanged to
OpenAI-compatible upstreams (`stream_options`, `n`, `parallel_tool_calls`, …).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meshplatform.errors import BadRequest, ValidationDetail

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Open(BaseModel):
    """Sub-objects keep fields we do not model, so they reach the upstream unchanged."""

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
    thought_signature: str | None = None


class ChatMessage(_Open):
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


class ToolChoiceFunction(_Open):
    name: str


class ToolChoice(_Open):
    type: Literal["function"]
    function: ToolChoiceFunction


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list)
    template: str | None = Field(default=None, min_length=1)
    variables: dict[str, str] | None = None
    session_id: str | None = Field(default=None, max_length=256)
    stream: bool = False
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
    transforms: list[Literal["middle-out"]] | None = None
    models: list[str] | None = None
    user: str | None = Field(default=None, max_length=256)
    modality: Literal["text", "image"] | None = None
    image: dict[str, Any] | None = None
    async_mode: bool = False
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    stream_options: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    @field_validator("model")
    @classmethod
    def _model_is_provider_slash_name(cls, value: str | None) -> str | None:
        if value is not None and "/" not in value.strip("/"):
            raise ValueError("model ids look like 'provider/name', e.g. 'openai/gpt-4o'")
        return value

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


# Fields that are Mesh's own and never reach an upstream (`transforms` is left to the adapter:
# OpenRouter applies it itself, Mesh applies it for the others).
MESH_ONLY_FIELDS = frozenset(
    {"template", "variables", "session_id", "models", "async_mode", "timeout"}
)


def _detail(error: Any) -> ValidationDetail:
    loc: list[str | int] = ["body", *error["loc"]]
    return {"loc": loc, "msg": error["msg"], "type": error["type"]}


def parse_chat_request(body: bytes) -> tuple[ChatCompletionRequest, dict[str, Any]]:
    """The validated request and the raw JSON object (forwarded with unknown fields intact)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(
            f"Request body is not valid JSON: {error.msg}.",
            param="body",
            details=[{"loc": ["body"], "msg": f"Invalid JSON: {error.msg}", "type": "json_invalid"}],
        ) from None
    if not isinstance(raw, dict):
        raise BadRequest(
            "Request body must be a JSON object.",
            param="body",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    try:
        chat = ChatCompletionRequest.model_validate(raw)
    except ValidationError as error:
        details = [_detail(e) for e in error.errors(include_url=False, include_context=False)]
        first = details[0]
        param = ".".join(str(part) for part in first["loc"][1:]) or None
        raise BadRequest(f"Invalid request: {param}: {first['msg']}", param=param, details=details) from None
    if not chat.messages and chat.template is None:
        msg = "messages must not be empty unless a template is given"
        raise BadRequest(
            f"Invalid request: messages: {msg}",
            param="messages",
            details=[{"loc": ["body", "messages"], "msg": msg, "type": "too_short"}],
        )
    return chat, raw
