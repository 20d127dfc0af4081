"""Request types of POST /v1/chat/completions: the union of both seed specs (and OpenAI's usual extras)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from meshapi.types._base import Request

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
ImageDetail = Literal["auto", "low", "high"]
AudioInputFormat = Literal["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "pcm16", "pcm24"]
ToolChoiceMode = Literal["none", "auto", "required"]


class ImageUrl(Request):
    url: str
    """A remote URL or a `data:` URI."""
    detail: ImageDetail | None = None


class VideoUrl(Request):
    url: str


class InputAudio(Request):
    format: AudioInputFormat
    data: str | None = None
    uri: str | None = None
    url: str | None = None


class TextContentPart(Request):
    type: Literal["text"] = "text"
    text: str


class ImageContentPart(Request):
    type: Literal["image_url"] = "image_url"
    image_url: ImageUrl


class VideoContentPart(Request):
    type: Literal["video_url"] = "video_url"
    video_url: VideoUrl
    fps: str | float | None = None


class AudioContentPart(Request):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


ContentPart = Annotated[
    TextContentPart | ImageContentPart | VideoContentPart | AudioContentPart, Field(discriminator="type")
]


class ToolCallFunction(Request):
    name: str
    arguments: str
    """JSON-encoded argument object, as the model produced it."""


class ToolCall(Request):
    """A tool call an assistant message made (sent back in the conversation history)."""

    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction
    thought_signature: str | None = None
    """Gemini's opaque reasoning signature; send it back unchanged with the tool call."""


class ChatMessage(Request):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class ToolFunction(Request):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """The arguments' JSON Schema."""


class Tool(Request):
    type: Literal["function"] = "function"
    function: ToolFunction


class ToolChoiceFunction(Request):
    name: str


class ToolChoice(Request):
    """Force one named tool: `ToolChoice(function=ToolChoiceFunction(name="get_weather"))`."""

    type: Literal["function"] = "function"
    function: ToolChoiceFunction


class ImageOptions(Request):
    """Image generation options (`modality="image"`)."""

    n: int | None = None
    size: str | None = None
    quality: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    partial_images: int | None = None
    image: str | list[str] | None = None
    seed: int | None = None
    sequential_image_generation: Literal["auto", "disabled"] | None = None
    sequential_image_generation_options: dict[str, Any] | None = None
    guidance_scale: float | None = None
    watermark: bool | None = None
    optimize_prompt_options: dict[str, Any] | None = None


class AudioOutputOptions(Request):
    voice: str | None = None
    format: Literal["wav", "mp3", "flac", "opus", "pcm16"] | None = None


class StreamOptions(Request):
    include_usage: bool | None = None


class ChatCompletionParams(Request):
    """A chat completion request. Unset fields are not sent; unknown keyword arguments are sent as is."""

    messages: list[ChatMessage] = Field(default_factory=list)
    model: str | None = None
    """`provider/name`; when None the gateway takes the template's, then the key's default model."""
    template: str | None = None
    """A stored prompt template's name, `name@version`, or UUID, expanded before the messages."""
    variables: dict[str, str] | None = None
    session_id: str | None = None
    """Your grouping key for usage reports."""
    stream: bool | None = None
    """Set by the SDK: `create()` sends false, `stream()` sends true."""
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoiceMode | ToolChoice | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    stream_options: StreamOptions | None = None
    reasoning_effort: str | None = None
    transforms: list[str] | None = None
    """OpenRouter transforms, e.g. `["middle-out"]`."""
    models: list[str] | None = None
    """Fallback models, tried in order when one fails with a retryable error."""
    user: str | None = None
    modality: Literal["text", "image"] | None = None
    image: ImageOptions | None = None
    async_mode: bool | None = None
    """Run as a background job (use `client.jobs.create(params)`)."""
    webhook_url: str | None = None
    """With `async_mode`: where the gateway POSTs the finished job (signed)."""
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutputOptions | None = None
    timeout: float | None = None
    """Seconds the gateway gives the upstream (504 `gateway_timeout` past it); not the HTTP timeout."""

    def to_body(self, **overrides: Any) -> dict[str, Any]:
        """The JSON body: fields you set (None values dropped), plus `overrides`."""
        body = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        body.update(overrides)
        return body


class TemplateVariable(Request):
    """A prompt template's declared `{{slot}}`: its name and an optional default."""

    name: str
    default: str | None = None
    description: str | None = None


TemplateVariableLike = TemplateVariable | Mapping[str, Any]
