"""The wire schema of POST /v1/chat/completions: the union of both seed specs, as pydantic models.

Validation is declarative and its errors are the seeds' pydantic-style `details`.
Unknown top-level fields are allowed: they are forwarded unchanged to
OpenAI-compatible upstreams (`stream_options`, `n`, `parallel_tool_calls`, …).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from meshplatform.chat_schema import ChatMessage, ChatParameters
from meshplatform.errors import BadRequest, ValidationDetail


class ChatCompletionRequest(ChatParameters):
    model: str | None = None
    messages: list[ChatMessage] = Field(default_factory=list)
    template: str | None = Field(default=None, min_length=1)
    variables: dict[str, str] | None = None
    session_id: str | None = Field(default=None, max_length=256)
    stream: bool = False
    transforms: list[Literal["middle-out"]] | None = None
    models: list[str] | None = None
    modality: Literal["text", "image"] | None = None
    image: dict[str, Any] | None = None
    async_mode: bool = False
    webhook_url: str | None = Field(default=None, max_length=2000)
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    stream_options: dict[str, Any] | None = None
    # The JSON object as the client sent it: the typed fields above are what Mesh reads; this is
    # what OpenAI-compatible upstreams receive (unknown fields intact, minus Mesh's own).
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_is_provider_slash_name(cls, value: str | None) -> str | None:
        if value is not None and "/" not in value.strip("/"):
            raise ValueError("model ids look like 'provider/name', e.g. 'openai/gpt-4o'")
        return value

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    @property
    def raw(self) -> dict[str, Any]:
        """The request as sent (read it, never change it)."""
        return self._raw

    def upstream_fields(self) -> dict[str, Any]:
        """The request as sent minus Mesh's own fields: the body OpenAI-compatible upstreams get."""
        return {name: value for name, value in self._raw.items() if name not in MESH_ONLY_FIELDS}


# Fields that are Mesh's own and never reach an upstream (`transforms` is left to the adapter:
# OpenRouter applies it itself, Mesh applies it for the others).
MESH_ONLY_FIELDS = frozenset(
    {"template", "variables", "session_id", "models", "async_mode", "webhook_url", "timeout"}
)


def _detail(error: Any) -> ValidationDetail:
    loc: list[str | int] = ["body", *error["loc"]]
    return {"loc": loc, "msg": error["msg"], "type": error["type"]}


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """The validated request from a JSON body (422 naming what is wrong)."""
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
    return validate_chat_request(raw)


def validate_chat_request(raw: dict[str, Any]) -> ChatCompletionRequest:
    """The validated request from a decoded JSON object (a batch line, a job's stored body)."""
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
    chat._raw = raw
    return chat
