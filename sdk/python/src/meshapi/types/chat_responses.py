"""Response types of chat completions: the JSON object and the streamed chunks (tolerant of new fields)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from meshapi.types._base import Response
from meshapi.types.errors import ErrorBody


class FunctionCall(Response):
    name: str | None = None
    arguments: str = ""


class MessageToolCall(Response):
    id: str = ""
    type: str = "function"
    function: FunctionCall = FunctionCall()
    thought_signature: str | None = None


class ChatCompletionMessage(Response):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    refusal: str | None = None


class ChatCompletionChoice(Response):
    index: int = 0
    message: ChatCompletionMessage = ChatCompletionMessage()
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class PromptTokensDetails(Response):
    cached_tokens: int | None = None


class Usage(Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletion(Response):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[ChatCompletionChoice] = []
    usage: Usage = Field(default_factory=Usage)
    """Always an object (zeros when the server sent none), so `reply.usage.total_tokens` just works."""
    system_fingerprint: str | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _usage_never_null(cls, value: Any) -> Any:
        return Usage() if value is None else value


class DeltaFunctionCall(Response):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(Response):
    """A piece of a tool call: `id` and `function.name` come first, `arguments` in fragments."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: DeltaFunctionCall | None = None
    thought_signature: str | None = None


class ChoiceDelta(Response):
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    refusal: str | None = None


class ChunkChoice(Response):
    index: int = 0
    delta: ChoiceDelta = ChoiceDelta()
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(Response):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: Usage | None = None
    system_fingerprint: str | None = None
    error: ErrorBody | None = None
    """Set on the last chunk of a stream that failed after its first byte (the SDK raises it)."""
