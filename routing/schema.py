"""The wire schema of POST /v1/chat/completions: the union of both seed specs, as pydantic models.

Validation is declarative and its errors are the seeds' pydantic-style `details`.
Unknown top-level fields are allowed: they are forwarded unchanged to
OpenAI-compatible upstreams (`stream_options`, `parallel_tool_calls`, …).

Parsing is bounded before it is thorough: the body is parsed and walked once against the JSON
limits (meshplatform.json_input), then the counts Mesh caps (messages, parts, tools, stop
sequences, fallbacks) are checked in O(messages), and only then does pydantic validate.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from meshplatform.chat_schema import (
    ChatMessage,
    ChatParameters,
    Identifier,
    OpenObject,
    StoredStr,
    chat_error_details,
)
from meshplatform.errors import BadRequest, ValidationDetail
from meshplatform.json_input import JsonLimits, json_bounds_check, json_loads_bounded

# `provider/name`: a slash with something on each side (documented; checked by the validator).
MODEL_ID_PATTERN = "^/*[^/\\u0000][^\\u0000]*/[^\\u0000]*[^/\\u0000]/*$"
ModelId = Annotated[
    StoredStr, Field(min_length=1, max_length=200, json_schema_extra={"pattern": MODEL_ID_PATTERN})
]


class StreamOptions(OpenObject):
    include_usage: bool | None = None


class ChatCompletionRequest(ChatParameters):
    model_config = ConfigDict(
        extra="allow",
        strict=True,
        # Documents the one rule across fields: messages, or a template that brings them.
        json_schema_extra={
            "anyOf": [
                {"required": ["messages"], "properties": {"messages": {"minItems": 1}}},
                {"required": ["template"], "properties": {"template": {"type": "string"}}},
            ]
        },
    )
    model: ModelId | None = None
    messages: list[ChatMessage] = Field(default_factory=list)
    template: Annotated[StoredStr, Field(min_length=1)] | None = None  # too long: 404 (not a ref)
    variables: dict[str, str] | None = None
    session_id: Identifier | None = None
    stream: bool = False
    transforms: list[Literal["middle-out"]] | None = None
    models: list[ModelId] | None = None
    modality: Literal["text", "image"] | None = None
    image: dict[str, Any] | None = None
    async_mode: bool = False
    webhook_url: str | None = Field(default=None, max_length=2000)
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    stream_options: StreamOptions | None = None
    # The JSON object as the client sent it: the typed fields above are what Mesh reads; this is
    # what OpenAI-compatible upstreams receive (unknown fields intact, minus Mesh's own).
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_is_a_name(cls, value: str | None) -> str | None:
        """Any non-blank name: a catalog id, a tenant alias or a bare upstream name (the catalog
        decides, with a 404 naming the problem)."""
        if value is not None and not value.strip():
            raise ValueError("model must name a model, e.g. 'openai/gpt-4o'")
        return value

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

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


def validation_error(errors: list[ValidationDetail]) -> BadRequest:
    """The 422 for `errors` (the envelope keeps the first MESH_MAX_ERROR_DETAILS of them)."""
    first = errors[0]
    param = ".".join(str(part) for part in first["loc"][1:]) or None
    return BadRequest(f"Invalid request: {param}: {first['msg']}", param=param, details=errors)


def _too_many(loc: list[str | int], limit: int, setting: str, what: str) -> ValidationDetail:
    return {"loc": ["body", *loc], "msg": f"at most {limit} {what} ({setting})", "type": "too_long"}


# (request field, setting, what it counts): lists or objects whose length Mesh caps.
COUNTED_FIELDS = (
    ("tools", "MESH_MAX_TOOLS", "tools"),
    ("stop", "MESH_MAX_STOP_SEQUENCES", "stop sequences"),
    ("models", "MESH_MAX_FALLBACK_MODELS", "fallback models"),
    ("variables", "MESH_MAX_TEMPLATE_VARIABLES", "variables"),
)


@functools.cache
def _limits() -> dict[str, int]:
    """The count limits, read once per process (cleared when a test overrides settings)."""
    names = ["MESH_MAX_MESSAGES", "MESH_MAX_CONTENT_PARTS", *(setting for _, setting, _ in COUNTED_FIELDS)]
    return {name: getattr(settings, name) for name in names}


@receiver(setting_changed)
def _limits_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("MESH_MAX_"):
        _limits.cache_clear()


def request_bounds_check(raw: dict[str, Any]) -> None:
    """The counts Mesh caps, checked before validation so no request makes it validate millions
    of items (each a setting; see README "Request limits")."""
    limits = _limits()
    problems: list[ValidationDetail] = []
    messages = raw.get("messages")
    if isinstance(messages, list):
        max_messages, max_parts = limits["MESH_MAX_MESSAGES"], limits["MESH_MAX_CONTENT_PARTS"]
        if len(messages) > max_messages:
            problems.append(_too_many(["messages"], max_messages, "MESH_MAX_MESSAGES", "messages"))
        else:
            for index, message in enumerate(messages):
                content = message.get("content") if type(message) is dict else None
                if type(content) is list and len(content) > max_parts:
                    where: list[str | int] = ["messages", index, "content"]
                    what = "parts per message"
                    problems.append(_too_many(where, max_parts, "MESH_MAX_CONTENT_PARTS", what))
    for field, setting, what in COUNTED_FIELDS:
        value = raw.get(field)
        if isinstance(value, (list, dict)) and len(value) > limits[setting]:
            problems.append(_too_many([field], limits[setting], setting, what))
    if problems:
        raise validation_error(problems)


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """The validated request from a JSON body (422 naming what is wrong)."""
    raw = json_loads_bounded(body)
    if not isinstance(raw, dict):
        raise BadRequest(
            "Request body must be a JSON object.",
            param="body",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "model_type"}],
        )
    return _validated(raw)


def validate_chat_request(raw: dict[str, Any]) -> ChatCompletionRequest:
    """The validated request from a decoded JSON object (a batch line, a job's stored body): the
    same limits as a body parsed here."""
    json_bounds_check(raw, JsonLimits.from_settings())
    return _validated(raw)


def _validated(raw: dict[str, Any]) -> ChatCompletionRequest:
    request_bounds_check(raw)
    try:
        chat = ChatCompletionRequest.model_validate(raw)
    except ValidationError as error:
        raise validation_error(chat_error_details(error, raw)) from None
    if not chat.messages and chat.template is None:
        msg = "messages must not be empty unless a template is given"
        raise BadRequest(
            f"Invalid request: messages: {msg}",
            param="messages",
            details=[{"loc": ["body", "messages"], "msg": msg, "type": "too_short"}],
        )
    chat._raw = raw
    return chat
