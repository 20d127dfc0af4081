"""Anthropic Messages (`POST /v1/messages`), JSON and SSE event stream, as api.anthropic.com sends them."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import orjson

from simulator.asgi import SSE_HEADERS, Exchange, Headers, StreamScript, send_json
from simulator.engine import serve
from simulator.faults import Fault, with_stream_default
from simulator.reply import Prompt, Reply, Tool, ToolMode, count_words, example_arguments, plan_reply

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
THINKING_TEXT = "The user asked something; I will answer it briefly."
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class RequestError(Exception):
    """Not a valid Messages request; Anthropic answers these 400 invalid_request_error."""


def error_payload(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def request_headers() -> Headers:
    return [(b"request-id", b"req_" + secrets.token_hex(12).encode())]


async def send_error(exchange: Exchange, status: int, message: str) -> None:
    exchange.log_entry["outcome"] = "error"
    await send_json(exchange.send, status, error_payload(status, message), request_headers())


def auth_problem(exchange: Exchange) -> tuple[int, str] | None:
    if not exchange.headers.get("x-api-key"):
        return 401, "x-api-key header is required"
    if not exchange.headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    return None


def model_of(exchange: Exchange, body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    try:
        prompt = parse_prompt(body)
    except RequestError as error:
        await send_error(exchange, 400, str(error))
        return
    fault = with_stream_default(fault, stream=body.get("stream") is True)
    schema = _output_schema(body)
    if schema is not None and fault.content is None:
        # Structured outputs: the text is JSON valid against the schema.
        fault = dataclasses.replace(fault, content=orjson.dumps(example_arguments(schema)).decode())
    thinking = body.get("thinking")
    dialect = AnthropicDialect(
        model=body["model"],
        thinking=isinstance(thinking, dict) and thinking.get("type") == "enabled",
        cache_write_tokens=fault.cache_write_tokens,
        refusal=fault.content_filter is not None,
    )
    call_id = "toolu_" + secrets.token_hex(12)
    await serve(
        exchange,
        dialect,
        fault,
        lambda: plan_reply(prompt, fault, call_id),
        stream=body.get("stream") is True,
    )


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    spec = config.get("format") if isinstance(config, dict) else None
    schema = spec.get("schema") if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


def parse_prompt(body: Any) -> Prompt:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str):
        raise RequestError("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: Field required")
    system_text, _, _ = _blocks_text(body.get("system"))
    words, images = count_words(system_text), 0
    last_user_text, tool_result = "", None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {"user", "assistant"}:
            raise RequestError(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        text, image_count, results = _blocks_text(message.get("content"))
        words += count_words(text) + sum(count_words(r) for r in results)
        images += image_count
        if message["role"] == "user":
            last_user_text = text or last_user_text
        tool_result = " ".join(results) if results else None
    tools, mode, forced = _tools(body)
    return Prompt(
        word_count=words,
        message_count=len(messages),
        image_count=images,
        last_user_text=last_user_text,
        tool_result=tool_result,
        tools=tools,
        tool_mode=mode,
        forced_tool=forced,
        max_tokens=max_tokens,
    )


def _blocks_text(content: Any) -> tuple[str, int, list[str]]:
    """Text, image count and tool results of a string-or-blocks content."""
    if isinstance(content, str):
        return content, 0, []
    if not isinstance(content, list):
        return "", 0, []
    texts: list[str] = []
    results: list[str] = []
    images = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind in {"image", "document"}:
            images += 1
        elif kind == "tool_use":
            texts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_result":
            result_text, _, _ = _blocks_text(block.get("content", ""))
            results.append(result_text)
    return " ".join(texts), images, results


def _tools(body: dict[str, Any]) -> tuple[tuple[Tool, ...], ToolMode, str | None]:
    tools = tuple(
        Tool(name=tool["name"], parameters=tool.get("input_schema") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool
    )
    choice = body.get("tool_choice") or {}
    kind = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
    if kind == "tool":
        return tools, "required", choice.get("name")
    if kind == "any":
        return tools, "required", None
    return tools, "none" if kind == "none" else "auto", None


class AnthropicDialect:
    """Renders a planned reply as a Messages `message` or its event stream."""

    def __init__(
        self, *, model: str, thinking: bool = False, cache_write_tokens: int = 0, refusal: bool = False
    ) -> None:
        self.model = model
        self.id = "msg_" + secrets.token_hex(12)
        self.headers = request_headers()
        self.stream_headers = SSE_HEADERS
        self.thinking = thinking
        self.cache_write_tokens = cache_write_tokens
        self.refusal = refusal
        self.signature = "sig_" + secrets.token_hex(16)

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def stream_error(self, message: str) -> bytes:
        return _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    def _usage(self, reply: Reply, output_tokens: int) -> dict[str, Any]:
        # Anthropic's input_tokens excludes cache reads and writes, which it reports separately.
        written = min(self.cache_write_tokens, max(0, reply.prompt_tokens - reply.cached_tokens))
        return {
            "input_tokens": max(0, reply.prompt_tokens - reply.cached_tokens - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _stop_reason(self, reply: Reply) -> str:
        return "refusal" if self.refusal else STOP_REASONS[reply.finish]

    def _message(self, reply: Reply, content: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self._stop_reason(reply) if final else None,
            "stop_sequence": None,
            "usage": self._usage(reply, reply.completion_tokens if final else 1),
        }

    def completion(self, reply: Reply) -> bytes:
        call = reply.tool_call
        content: list[dict[str, Any]] = []
        if self.thinking:
            content.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": self.signature})
        if call is None:
            content.append({"type": "text", "text": reply.text})
        else:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": orjson.loads(call.arguments)}
            )
        return orjson.dumps(self._message(reply, content, final=True))

    def _thinking_events(self) -> list[bytes]:
        start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        }
        return [
            _event("content_block_start", start),
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": THINKING_TEXT},
                },
            ),
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": self.signature},
                },
            ),
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]

    def stream(self, reply: Reply) -> StreamScript:
        call = reply.tool_call
        if call is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in reply.pieces]
        else:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in reply.pieces]
        index = 1 if self.thinking else 0
        head = [
            _event(
                "message_start", {"type": "message_start", "message": self._message(reply, [], final=False)}
            ),
            *(self._thinking_events() if self.thinking else []),
            _event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            ),
            _event("ping", {"type": "ping"}),
        ]
        content = [
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        ]
        tail = [
            _event("content_block_stop", {"type": "content_block_stop", "index": index}),
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                    "usage": {"output_tokens": reply.completion_tokens},
                },
            ),
            _event("message_stop", {"type": "message_stop"}),
        ]
        return StreamScript(head=head, content=content, tail=tail)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
