"""Helpers shared by the adapters that translate OpenAI's chat format to another provider's."""

from __future__ import annotations

import time
from typing import Any

import orjson

from meshplatform.errors import BadRequest
from routing.providers.base import unsupported_part


def parse_data_uri(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` → ("image/png", "AAAA"); None when not a base64 data URI."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not mime:
        return None
    return mime, data


def text_of(content: Any, provider: str, where: str) -> str:
    """A system or tool message's text: a string or text parts (anything else is a 422)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise unsupported_part(provider, where, type(content).__name__)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise unsupported_part(provider, f"{where}.{index}", kind)
        texts.append(part["text"])
    return "\n".join(texts)


def tool_arguments(call: Any, provider: str, where: str) -> tuple[str, str, Any]:
    """An assistant tool call's id, name and parsed arguments (invalid JSON arguments are a 422)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise unsupported_part(provider, where, call.get("type") if isinstance(call, dict) else None)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise BadRequest(
            f"{where}.function.arguments is not valid JSON; {provider} needs a JSON object.",
            param=f"{where}.function.arguments",
        ) from None
    return str(call.get("id") or ""), function["name"], parsed


def max_tokens_of(body: dict[str, Any], default: int | None) -> int:
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    return asked if isinstance(asked, int) else default or 4096


def stop_list(stop: Any) -> list[str] | None:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and stop:
        return [s for s in stop if isinstance(s, str)]
    return None


def json_schema_of(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """`response_format`'s kind ("json_schema", "json_object", "text" or None) and its schema."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None, None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return kind, schema if isinstance(schema, dict) else {"type": "object"}
    return kind if isinstance(kind, str) else None, None


def completion_payload(
    *, response_id: str, model: str, message: dict[str, Any], finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's `chat.completion` object with one choice."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage,
    }


def openai_usage(
    prompt: int, completion: int, cached: int, cache_write: int, reasoning: int = 0
) -> dict[str, Any]:
    """OpenAI's usage object; `prompt_tokens` counts every input token (cache reads and writes too)."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
    }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage
