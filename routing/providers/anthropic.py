"""Anthropic's Messages API (`POST /v1/messages`) behind OpenAI's chat format.

Requests: system/developer messages become `system`, consecutive same-role turns merge, tool
results group into one user turn, images and PDFs become image/document blocks, tools and
`tool_choice` map to Anthropic's, `reasoning_effort` becomes a thinking budget on models that
think. Answers: content blocks become `content`, `tool_calls` (ids kept), `reasoning_content`
and `thinking_blocks` (sent back unchanged on the next turn); usage counts cache reads and
writes apart so the catalog prices each. The stream translation lives in `anthropic_stream`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.conf import settings

from routing.http_client import UpstreamResponse
from routing.providers.anthropic_stream import STOP_REASONS, AnthropicStream, usage_of
from routing.providers.base import (
    Completion,
    ErrorFields,
    ProviderAdapter,
    UpstreamCall,
    UpstreamRequest,
    json_headers,
    load_json,
    unsupported_part,
    unsupported_value,
    usage_from_openai,
)
from routing.providers.sse import sse_events
from routing.providers.translate import (
    completion_payload,
    json_schema_of,
    max_tokens_of,
    parse_data_uri,
    stop_list,
    text_of,
    tool_arguments,
)

PROVIDER = "anthropic"
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING_BUDGET = 1024
DOCUMENT_TYPES = frozenset({"application/pdf", "text/plain"})
# Anthropic-only request fields a client may send through the OpenAI interface.
NATIVE_FIELDS = ("top_k", "thinking", "metadata", "service_tier")


class AnthropicAdapter(ProviderAdapter):
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        return UpstreamRequest(
            url=f"{self.base_url}/messages",
            headers=json_headers(
                {"x-api-key": self.api_key, "anthropic-version": settings.ANTHROPIC_VERSION},
                stream=call.stream,
            ),
            body=orjson.dumps(messages_request(call)),
        )

    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        data = load_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise self.malformed("a response that is not a Messages object")
        payload = completion_from_message(data, call.upstream_model)
        return Completion(payload=payload, usage=usage_from_openai(payload["usage"]))

    async def iter_chunks(
        self, response: UpstreamResponse, call: UpstreamCall
    ) -> AsyncIterator[dict[str, Any]]:
        translator = AnthropicStream(self, call.upstream_model)
        async for event in sse_events(response):
            if event.data:
                for chunk in translator.feed(event.data):
                    yield chunk
        translator.finish()

    def error_fields(self, body: bytes) -> ErrorFields:
        """`{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`."""
        data = load_json(body)
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return super().error_fields(body)
        message, kind = error.get("message"), error.get("type")
        return ErrorFields(
            message=str(message)[:500] if message else None,
            code=None,
            type=kind if isinstance(kind, str) else None,
            param=None,
        )


def messages_request(call: UpstreamCall) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat body."""
    body = call.body
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise unsupported_value(PROVIDER, "n", "it returns one choice per request")
    system, messages = translate_messages(body.get("messages") or [])
    request: dict[str, Any] = {
        "model": call.upstream_model,
        "max_tokens": max_tokens_of(body, call.max_output_tokens),
        "messages": messages,
    }
    if system:
        request["system"] = system
    if call.stream:
        request["stream"] = True
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    stops = stop_list(body.get("stop"))
    if stops:
        request["stop_sequences"] = stops
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    for name in NATIVE_FIELDS:
        if body.get(name) is not None:
            request[name] = body[name]
    _tools(body, request)
    _response_format(body, request)
    _thinking(body, request, call.reasoning)
    return request


def translate_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system blocks, alternating user/assistant turns with content blocks)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        where = f"messages.{index}"
        if role in ("system", "developer"):
            system.extend(_system_blocks(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            turn_role, blocks = "user", _user_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(message, where)
        elif role in ("tool", "function"):
            turn_role, blocks = "user", [_tool_result(message, where)]
        else:
            raise unsupported_part(PROVIDER, f"{where}.role", role)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _system_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [_text_block(part, f"{where}.{i}") for i, part in enumerate(content)]
    text = text_of(content, PROVIDER, where)
    return [{"type": "text", "text": text}] if text else []


def _text_block(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
        raise unsupported_part(PROVIDER, where, part.get("type") if isinstance(part, dict) else None)
    block: dict[str, Any] = {"type": "text", "text": part["text"]}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        return []
    blocks = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(_text_block(part, f"{where}.{index}"))
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}.{index}"))
        elif kind == "file":
            blocks.append(_document_block(part, f"{where}.{index}"))
        else:
            raise unsupported_part(PROVIDER, f"{where}.{index}", kind)
    return blocks


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise unsupported_part(PROVIDER, where, "image_url")
    inline = parse_data_uri(url)
    if inline is not None:
        source: dict[str, Any] = {"type": "base64", "media_type": inline[0], "data": inline[1]}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise unsupported_part(PROVIDER, f"{where}.image_url.url", "image_url without an https or data: URL")
    block = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _document_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    """OpenAI's `file` part with inline `file_data` (a PDF or text data URI) → a document block."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    inline = parse_data_uri(data) if isinstance(data, str) else None
    if inline is None or inline[0] not in DOCUMENT_TYPES:
        raise unsupported_part(PROVIDER, where, "file without inline PDF or text file_data")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": inline[0], "data": inline[1]},
    }
    if isinstance(file, dict) and isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        dict(block)
        for block in message.get("thinking_blocks") or ()
        if isinstance(block, dict) and block.get("type") in ("thinking", "redacted_thinking")
    ]
    content = message.get("content")
    if isinstance(content, list):
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and part.get("text"):
                blocks.append(_text_block(part, f"{where}.content.{index}"))
            elif kind != "refusal":
                raise unsupported_part(PROVIDER, f"{where}.content.{index}", kind)
    elif isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    for index, call in enumerate(message.get("tool_calls") or ()):
        call_id, name, arguments = tool_arguments(call, PROVIDER, f"{where}.tool_calls.{index}")
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    if isinstance(content, list):
        result["content"] = _user_blocks(content, f"{where}.content")
    else:
        result["content"] = text_of(content, PROVIDER, f"{where}.content")
    return result


def _tools(body: dict[str, Any], request: dict[str, Any]) -> None:
    tools = []
    for index, tool in enumerate(body.get("tools") or ()):
        function = (
            tool.get("function")
            if isinstance(tool, dict) and tool.get("type", "function") == "function"
            else None
        )
        if not isinstance(function, dict):
            raise unsupported_part(
                PROVIDER, f"tools.{index}", tool.get("type") if isinstance(tool, dict) else None
            )
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        entry: dict[str, Any] = {"name": function.get("name"), "input_schema": schema}
        if function.get("description"):
            entry["description"] = function["description"]
        tools.append(entry)
    if tools:
        request["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None and (tools or choice["type"] == "none"):
        if body.get("parallel_tool_calls") is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        request["tool_choice"] = choice
    elif tools and body.get("parallel_tool_calls") is False:
        request["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    return None


def _response_format(body: dict[str, Any], request: dict[str, Any]) -> None:
    """json_schema → Anthropic's structured outputs; json_object (no native JSON mode) → an instruction."""
    kind, schema = json_schema_of(body)
    if kind == "json_schema":
        request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind == "json_object":
        request.setdefault("system", []).append(
            {"type": "text", "text": "Answer with a single JSON object and nothing else."}
        )


def _thinking(body: dict[str, Any], request: dict[str, Any], reasoning: bool) -> None:
    """`reasoning_effort` → a thinking budget below max_tokens (models that cannot think ignore it)."""
    effort = body.get("reasoning_effort")
    if "thinking" in request or not reasoning or effort not in THINKING_BUDGETS:
        return
    if request.get("tool_choice", {}).get("type") in ("any", "tool"):
        return  # Anthropic cannot think while a tool is forced
    budget = min(THINKING_BUDGETS[effort], request["max_tokens"] - 1)
    if budget < MIN_THINKING_BUDGET:
        return
    request["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # Anthropic refuses sampling changes while thinking.
    request.pop("temperature", None)
    request.pop("top_k", None)


def completion_from_message(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A Messages `message` object → OpenAI's `chat.completion`."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking_blocks:
        message["reasoning_content"] = "".join(thinking)
        message["thinking_blocks"] = thinking_blocks
    return completion_payload(
        response_id=str(data.get("id") or ""),
        model=str(data.get("model") or model),
        message=message,
        finish_reason=STOP_REASONS.get(data.get("stop_reason") or "end_turn", "stop"),
        usage=usage_of(data.get("usage") or {}),
    )
