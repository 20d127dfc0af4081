"""Anthropic's Messages event stream → OpenAI `chat.completion.chunk` dicts, in order.

message_start → the role chunk; text_delta → `content`; tool_use blocks → `tool_calls[i]` (id and
name first, then `input_json_delta` fragments as `function.arguments`); thinking_delta →
`reasoning_content`, signature_delta → the whole `thinking_blocks` entry (so the client can send
it back); message_delta → `finish_reason`; message_stop → the usage chunk; ping is dropped; an
`error` event raises (the relay ends the stream with the error chunk). One dict per event that
carries output, built as literals: this runs once per relayed chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from meshplatform.errors import UpstreamError
from routing.providers.translate import openai_usage

if TYPE_CHECKING:
    from routing.providers.base import ProviderAdapter

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def usage_of(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's usage → OpenAI's: `input_tokens` excludes cache reads and writes, OpenAI's
    `prompt_tokens` counts them all."""
    fresh = usage.get("input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    return openai_usage(fresh + read + written, usage.get("output_tokens") or 0, read, written)


class AnthropicStream:
    """The translation state of one stream: ids, block index → tool-call index, usage so far."""

    __slots__ = ("adapter", "created", "id", "model", "started", "stopped", "thinking", "tools", "usage")

    def __init__(self, adapter: ProviderAdapter, model: str) -> None:
        self.adapter = adapter
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.tools: dict[int, int] = {}
        self.thinking: dict[int, str] = {}
        self.usage: dict[str, Any] = {}
        self.stopped = False
        self.started = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def feed(self, data: str) -> Iterator[dict[str, Any]]:
        """The chunks one event's `data` becomes (none for most bookkeeping events)."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.adapter.malformed("a stream event that is not JSON") from None
        if not isinstance(event, dict):
            raise self.adapter.malformed("a stream event that is not an object")
        kind = event.get("type")
        if kind == "content_block_delta":
            chunk = self._delta(event)
            if chunk is not None:
                yield chunk
        elif kind == "content_block_start":
            chunk = self._block_start(event)
            if chunk is not None:
                yield chunk
        elif kind == "message_start":
            yield self._message_start(event.get("message") or {})
        elif kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            yield self._chunk({}, STOP_REASONS.get(reason or "end_turn", "stop"))
        elif kind == "message_stop":
            self.stopped = True
            yield {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_of(self.usage),
            }
        elif kind == "error":
            raise self._error(event.get("error") or {})

    def finish(self) -> None:
        """The upstream closed the stream: without message_stop it was cut off."""
        if not self.stopped:
            raise self.adapter.malformed("a stream that ended before message_stop")

    def _message_start(self, message: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or self.model)
        self.usage = dict(message.get("usage") or {})
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, event: dict[str, Any]) -> dict[str, Any] | None:
        block = event.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            position = self.tools[event.get("index", 0)] = len(self.tools)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if kind == "thinking":
            self.thinking[event.get("index", 0)] = block.get("thinking") or ""
        elif kind == "redacted_thinking":
            return self._chunk({"thinking_blocks": [block]})
        return None

    def _delta(self, event: dict[str, Any]) -> dict[str, Any] | None:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk({"content": delta.get("text") or ""})
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if not fragment:
                return None
            position = self.tools.get(event.get("index", 0), 0)
            return self._chunk({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]})
        if kind == "thinking_delta":
            index = event.get("index", 0)
            text = delta.get("thinking") or ""
            self.thinking[index] = self.thinking.get(index, "") + text
            return self._chunk({"reasoning_content": text})
        if kind == "signature_delta":
            block = {
                "type": "thinking",
                "thinking": self.thinking.get(event.get("index", 0), ""),
                "signature": delta.get("signature"),
            }
            return self._chunk({"thinking_blocks": [block]})
        return None

    def _error(self, error: dict[str, Any]) -> UpstreamError:
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        message = str(error.get("message") or "stream error")[:500]
        # Before the first event the request can still go elsewhere (an overload is not processed).
        early = not self.started and kind in RETRYABLE_STREAM_ERRORS
        return UpstreamError(
            f"The {self.adapter.name} upstream failed mid-stream: {message}",
            provider_error=self.adapter.provider_error(None, message, kind=kind),
            retryable=early,
            retry_safe=early,
        )
