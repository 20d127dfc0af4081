"""OpenAI chat ↔ Gemini GenerateContent translation: the request, the answer, and its SSE stream."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from meshplatform.errors import BadRequest, UpstreamError
from routing.providers.base import unsupported_part, unsupported_value
from routing.providers.translate import (
    completion_payload,
    json_schema_of,
    openai_usage,
    parse_data_uri,
    stop_list,
    text_of,
    tool_arguments,
)

if TYPE_CHECKING:
    from routing.providers.base import ProviderAdapter, UpstreamCall

PROVIDER = "gemini"
FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})
THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
# The JSON Schema keywords Gemini's `Schema` takes; the rest are dropped, not sent.
SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required",
        "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
        "minProperties", "maxProperties", "anyOf", "propertyOrdering",
    }
)  # fmt: skip
MAX_SCHEMA_DEPTH = 32


def generate_request(call: UpstreamCall) -> dict[str, Any]:
    """The GenerateContentRequest for an OpenAI chat body."""
    body = call.body
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise unsupported_value(PROVIDER, "n", "Mesh relays one candidate per request")
    system, contents = translate_messages(body.get("messages") or [])
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    tools = _function_declarations(body.get("tools"))
    if tools:
        request["tools"] = [{"functionDeclarations": tools}]
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config is not None:
        request["toolConfig"] = {"functionCallingConfig": tool_config}
    config = _generation_config(body, call.reasoning)
    if config:
        request["generationConfig"] = config
    return request


def translate_messages(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """OpenAI messages → (system texts, user/model contents, consecutive same roles merged)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(messages):
        role, where = message.get("role"), f"messages.{index}"
        if role in ("system", "developer"):
            text = text_of(message.get("content"), PROVIDER, f"{where}.content")
            if text:
                system.append(text)
            continue
        if role == "user":
            gemini_role, parts = "user", _user_parts(message.get("content"), f"{where}.content")
        elif role == "assistant":
            gemini_role, parts = "model", _model_parts(message, where, call_names)
        elif role in ("tool", "function"):
            gemini_role, parts = "user", [_function_response(message, where, call_names)]
        else:
            raise unsupported_part(PROVIDER, f"{where}.role", role)
        if not parts:
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    return system, contents


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for index, part in enumerate(content or ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append(
                _media_part(image.get("url") if isinstance(image, dict) else image, f"{where}.{index}")
            )
        elif kind == "file":
            file = part.get("file") if isinstance(part.get("file"), dict) else {}
            parts.append(_media_part(file.get("file_data") or file.get("file_id"), f"{where}.{index}"))
        elif kind == "input_audio":
            audio = part.get("input_audio") if isinstance(part.get("input_audio"), dict) else {}
            if not isinstance(audio.get("data"), str):
                raise unsupported_part(PROVIDER, f"{where}.{index}", "input_audio without data")
            mime = f"audio/{audio.get('format', 'wav')}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        else:
            raise unsupported_part(PROVIDER, f"{where}.{index}", kind)
    return parts


def _media_part(url: Any, where: str) -> dict[str, Any]:
    """A data URI → inline data; a URL (https, gs://, a Files API URI) → file data."""
    if not isinstance(url, str) or not url:
        raise unsupported_part(PROVIDER, where, "media without a URL or data")
    inline = parse_data_uri(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if url.startswith(("https://", "http://", "gs://")):
        return {"fileData": {"mimeType": _mime_of(url), "fileUri": url}}
    raise unsupported_part(PROVIDER, where, "media that is neither a URL nor a data: URI")


def _mime_of(url: str) -> str:
    suffix = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
        "gif": "image/gif", "pdf": "application/pdf", "mp3": "audio/mp3", "wav": "audio/wav",
        "mp4": "video/mp4",
    }.get(suffix, "application/octet-stream")  # fmt: skip


def _model_parts(message: dict[str, Any], where: str, call_names: dict[str, str]) -> list[dict[str, Any]]:
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        parts.append({"text": content})
    elif isinstance(content, list):
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and part.get("text"):
                parts.append({"text": part["text"]})
            elif kind != "refusal":
                raise unsupported_part(PROVIDER, f"{where}.content.{index}", kind)
    for index, call in enumerate(message.get("tool_calls") or ()):
        call_id, name, arguments = tool_arguments(call, PROVIDER, f"{where}.tool_calls.{index}")
        call_names[call_id] = name
        call_part: dict[str, Any] = {"functionCall": {"name": name, "args": arguments}}
        signature = call.get("thought_signature")
        if isinstance(signature, str) and signature:
            call_part["thoughtSignature"] = signature
        parts.append(call_part)
    return parts


def _function_response(message: dict[str, Any], where: str, call_names: dict[str, str]) -> dict[str, Any]:
    name = call_names.get(str(message.get("tool_call_id") or "")) or message.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(
            f"{where}.tool_call_id matches no earlier assistant tool call; Gemini needs the function's name.",
            param=f"{where}.tool_call_id",
        )
    text = text_of(message.get("content"), PROVIDER, f"{where}.content")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _function_declarations(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for index, tool in enumerate(tools or ()):
        function = (
            tool.get("function")
            if isinstance(tool, dict) and tool.get("type", "function") == "function"
            else None
        )
        if not isinstance(function, dict):
            raise unsupported_part(
                PROVIDER, f"tools.{index}", tool.get("type") if isinstance(tool, dict) else None
            )
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters.get("properties"):
            declaration["parameters"] = gemini_schema(parameters)
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    return None


def _generation_config(body: dict[str, Any], reasoning: bool) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int):
        config["maxOutputTokens"] = max_tokens
    stops = stop_list(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    kind, schema = json_schema_of(body)
    if kind in ("json_schema", "json_object"):
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseSchema"] = gemini_schema(schema)
    effort = body.get("reasoning_effort")
    if reasoning and effort in THINKING_BUDGETS:
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}
    return config


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema in Gemini's subset: `$ref`s inlined, `["x", "null"]` → nullable, `const` →
    a one-value enum, every other unsupported keyword dropped."""
    cleaned: dict[str, Any] = _clean(schema, schema.get("$defs") or schema.get("definitions") or {}, 0)
    return cleaned


def _clean(schema: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        return _clean(
            {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}},
            defs,
            depth + 1,
        )
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {name: _clean(sub, defs, depth + 1) for name, sub in value.items()}
        elif key == "items":
            cleaned[key] = _clean(value, defs, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [
                option for option in value if not (isinstance(option, dict) and option.get("type") == "null")
            ]
            if len(options) < len(value):
                cleaned["nullable"] = True
            if len(options) == 1:
                cleaned.update(_clean(options[0], defs, depth + 1))
            else:
                cleaned[key] = [_clean(option, defs, depth + 1) for option in options]
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            cleaned["type"] = kinds[0] if kinds else "string"
            if len(kinds) < len(value):
                cleaned["nullable"] = True
        elif key == "const":
            cleaned["enum"] = [value]
        elif key in SCHEMA_KEYS:
            cleaned[key] = value
    return cleaned


def _finish_reason(reason: str | None, has_calls: bool) -> str | None:
    if reason is None:
        return None
    if reason in FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def usage_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """usageMetadata → OpenAI's usage: thoughts are output tokens (Gemini bills them so)."""
    prompt = (metadata.get("promptTokenCount") or 0) + (metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = metadata.get("thoughtsTokenCount") or 0
    output = (metadata.get("candidatesTokenCount") or 0) + thoughts
    return openai_usage(prompt, output, metadata.get("cachedContentTokenCount") or 0, 0, thoughts)


class _Parts:
    """What one candidate's parts say, in OpenAI's terms."""

    __slots__ = ("calls", "reasoning", "text")

    def __init__(self, parts: list[Any], response_id: str, first_call: int) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            if "functionCall" in part:
                self.calls.append(_tool_call(part, response_id, first_call + len(self.calls)))
            elif isinstance(part.get("text"), str):
                (self.reasoning if part.get("thought") else self.text).append(part["text"])


def _tool_call(part: dict[str, Any], response_id: str, position: int) -> dict[str, Any]:
    call = part["functionCall"] if isinstance(part["functionCall"], dict) else {}
    call_id = call.get("id") or (
        f"call_{response_id}_{position}" if response_id else "call_" + secrets.token_hex(12)
    )
    tool_call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": call.get("name"), "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    if part.get("thoughtSignature"):
        tool_call["thought_signature"] = part["thoughtSignature"]
    return tool_call


def _first_candidate(data: dict[str, Any]) -> dict[str, Any]:
    candidates = data.get("candidates")
    return (
        candidates[0]
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict)
        else {}
    )


def completion_from_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A GenerateContentResponse → OpenAI's `chat.completion` (a blocked prompt is content_filter)."""
    response_id = str(data.get("responseId") or "")
    candidate = _first_candidate(data)
    parts = _Parts((candidate.get("content") or {}).get("parts") or [], response_id, 0)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(parts.text) if parts.text else None,
        "refusal": None,
    }
    if parts.calls:
        message["tool_calls"] = parts.calls
    if parts.reasoning:
        message["reasoning_content"] = "".join(parts.reasoning)
    blocked = not candidate and (data.get("promptFeedback") or {}).get("blockReason")
    finish = (
        "content_filter"
        if blocked
        else _finish_reason(candidate.get("finishReason") or "STOP", bool(parts.calls))
    )
    return completion_payload(
        response_id=response_id or "gen-" + secrets.token_hex(12),
        model=str(data.get("modelVersion") or model),
        message=message,
        finish_reason=finish or "stop",
        usage=usage_of(data.get("usageMetadata") or {}),
    )


class GeminiStream:
    """One stream's translation state: the response id, tool calls so far, the last usageMetadata."""

    __slots__ = ("adapter", "calls", "created", "finished", "id", "model", "role_sent", "started", "usage")

    def __init__(self, adapter: ProviderAdapter, model: str) -> None:
        self.adapter = adapter
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.calls = 0
        self.usage: dict[str, Any] = {}
        self.finished = False
        self.started = False
        self.role_sent = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def feed(self, data: str) -> Iterator[dict[str, Any]]:
        try:
            response = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.adapter.malformed("a stream event that is not JSON") from None
        if not isinstance(response, dict):
            raise self.adapter.malformed("a stream event that is not an object")
        if "error" in response:
            raise self._error(response["error"] if isinstance(response["error"], dict) else {})
        if not self.started:
            self.started = True
            self.id = str(response.get("responseId") or "gen-" + secrets.token_hex(12))
            self.model = str(response.get("modelVersion") or self.model)
        if isinstance(response.get("usageMetadata"), dict):
            self.usage = response["usageMetadata"]
        candidate = _first_candidate(response)
        parts = _Parts((candidate.get("content") or {}).get("parts") or [], self.id, self.calls)
        delta: dict[str, Any] = {}
        if not self.role_sent:
            self.role_sent = True
            delta["role"] = "assistant"
            delta["content"] = "".join(parts.text)
        elif parts.text:
            delta["content"] = "".join(parts.text)
        if parts.reasoning:
            delta["reasoning_content"] = "".join(parts.reasoning)
        if parts.calls:
            delta["tool_calls"] = [{"index": self.calls + i, **call} for i, call in enumerate(parts.calls)]
            self.calls += len(parts.calls)
        if delta:
            yield self._chunk(delta)
        reason = candidate.get("finishReason")
        if not candidate and (response.get("promptFeedback") or {}).get("blockReason"):
            reason = "SAFETY"
        if reason:
            self.finished = True
            yield self._chunk({}, _finish_reason(reason, self.calls > 0))

    def finish(self) -> dict[str, Any]:
        """The usage chunk, once the stream closed; without a finish reason it was cut off."""
        if not self.finished:
            raise self.adapter.malformed("a stream that ended without a finishReason")
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_of(self.usage),
        }

    def _error(self, error: dict[str, Any]) -> UpstreamError:
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = str(error.get("message") or "stream error")[:500]
        code = error.get("code") if isinstance(error.get("code"), int) else None
        early = not self.started and status in ("RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL")
        return UpstreamError(
            f"The {self.adapter.name} upstream failed mid-stream: {message}",
            provider_error=self.adapter.provider_error(code, message, code=status, kind=status),
            retryable=early,
            retry_safe=early,
        )
