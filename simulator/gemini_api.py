"""Gemini `generateContent` and `streamGenerateContent` (SSE with `alt=sse`, else a JSON array)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any
from urllib.parse import parse_qs

import orjson

from simulator.asgi import JSON_HEADERS, SSE_HEADERS, Exchange, Headers, StreamScript, send_json
from simulator.engine import serve
from simulator.faults import Fault, with_stream_default
from simulator.reply import Prompt, Reply, Tool, ToolMode, count_words, example_arguments, plan_reply

PATH_PREFIX = "/v1beta/models/"
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
THOUGHT_TOKENS = 12
THOUGHT_TEXT = "**Thinking it over**\nThe user wants a short answer."
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class RequestError(Exception):
    """Not a valid GenerateContentRequest; Google answers these 400 INVALID_ARGUMENT."""


def error_payload(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUSES.get(status, "UNKNOWN")}}


async def send_error(exchange: Exchange, status: int, message: str) -> None:
    exchange.log_entry["outcome"] = "error"
    await send_json(exchange.send, status, error_payload(status, message))


def split_path(path: str) -> tuple[str, str] | None:
    """`/v1beta/models/gemini-2.0-flash:generateContent` → ("gemini-2.0-flash", "generateContent")."""
    if not path.startswith(PATH_PREFIX):
        return None
    model, _, method = path[len(PATH_PREFIX) :].rpartition(":")
    if not model or method not in {"generateContent", "streamGenerateContent"}:
        return None
    return model, method


def _query(exchange: Exchange) -> dict[str, list[str]]:
    return parse_qs(exchange.query)


def auth_problem(exchange: Exchange) -> tuple[int, str] | None:
    if exchange.headers.get("x-goog-api-key") or _query(exchange).get("key"):
        return None
    return (
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def model_of(exchange: Exchange, body: Any) -> str | None:
    parts = split_path(exchange.path)
    return parts[0] if parts else None


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    parts = split_path(exchange.path)
    if parts is None:
        await send_error(exchange, 404, f"Unknown method {exchange.path}")
        return
    model, method = parts
    try:
        prompt = parse_prompt(body)
    except RequestError as error:
        await send_error(exchange, 400, str(error))
        return
    sse = _query(exchange).get("alt") == ["sse"]
    fault = with_stream_default(fault, stream=method == "streamGenerateContent")
    config = body.get("generationConfig") or {}
    schema = config.get("responseSchema")
    if isinstance(schema, dict) and fault.content is None:
        fault = dataclasses.replace(fault, content=orjson.dumps(example_arguments(schema)).decode())
    thinking = config.get("thinkingConfig")
    dialect = GeminiDialect(
        model=model,
        sse=sse,
        thinking=isinstance(thinking, dict),
        include_thoughts=isinstance(thinking, dict) and thinking.get("includeThoughts") is True,
        content_filter=fault.content_filter,
    )
    stream = method == "streamGenerateContent"
    await serve(exchange, dialect, fault, lambda: plan_reply(prompt, fault, ""), stream=stream)


def parse_prompt(body: Any) -> Prompt:
    if not isinstance(body, dict):
        raise RequestError("Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise RequestError("* GenerateContentRequest.contents: contents is not specified")
    system_text, _, _ = _parts_text(body.get("systemInstruction") or body.get("system_instruction"))
    words, images = count_words(system_text), 0
    last_user_text, tool_result = "", None
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise RequestError(
                f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty."
            )
        text, image_count, results = _parts_text(content)
        words += count_words(text) + sum(count_words(r) for r in results)
        images += image_count
        if content.get("role", "user") == "user":
            last_user_text = text or last_user_text
        tool_result = " ".join(results) if results else None
    tools, mode, forced = _tools(body)
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = (
        config.get("maxOutputTokens", config.get("max_output_tokens")) if isinstance(config, dict) else None
    )
    return Prompt(
        word_count=words,
        message_count=len(contents),
        image_count=images,
        last_user_text=last_user_text,
        tool_result=tool_result,
        tools=tools,
        tool_mode=mode,
        forced_tool=forced,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
    )


def _parts_text(content: Any) -> tuple[str, int, list[str]]:
    """Text, inline media count and function responses of a `Content`; the API takes camel or snake case."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return "", 0, []
    texts: list[str] = []
    results: list[str] = []
    images = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif any(key in part for key in ("inlineData", "inline_data", "fileData", "file_data")):
            images += 1
        elif call := part.get("functionCall") or part.get("function_call"):
            texts.append(orjson.dumps(call.get("args", {})).decode())
        elif response := part.get("functionResponse") or part.get("function_response"):
            results.append(orjson.dumps(response.get("response", {})).decode())
    return " ".join(texts), images, results


def _tools(body: dict[str, Any]) -> tuple[tuple[Tool, ...], ToolMode, str | None]:
    tools: list[Tool] = []
    for entry in body.get("tools") or []:
        declarations = (
            (entry.get("functionDeclarations") or entry.get("function_declarations") or [])
            if isinstance(entry, dict)
            else []
        )
        tools += [
            Tool(name=d["name"], parameters=d.get("parameters") or {})
            for d in declarations
            if isinstance(d, dict) and isinstance(d.get("name"), str)
        ]
    tool_config = body.get("toolConfig") or body.get("tool_config") or {}
    calling = (
        (tool_config.get("functionCallingConfig") or tool_config.get("function_calling_config") or {})
        if isinstance(tool_config, dict)
        else {}
    )
    mode = str(calling.get("mode", "AUTO")).upper()
    allowed = calling.get("allowedFunctionNames") or calling.get("allowed_function_names") or []
    if mode == "ANY":
        return tuple(tools), "required", allowed[0] if len(allowed) == 1 else None
    return tuple(tools), "none" if mode == "NONE" else "auto", None


class GeminiDialect:
    """Renders a planned reply as a `GenerateContentResponse`, or a stream of them (SSE or a JSON array)."""

    def __init__(
        self,
        *,
        model: str,
        sse: bool,
        thinking: bool = False,
        include_thoughts: bool = False,
        content_filter: str | None = None,
    ) -> None:
        self.model = model
        self.sse = sse
        self.response_id = secrets.token_urlsafe(16)
        self.headers: Headers = []
        self.stream_headers = SSE_HEADERS if sse else JSON_HEADERS
        self.thinking = thinking
        self.include_thoughts = include_thoughts
        self.content_filter = content_filter
        self.signature = secrets.token_urlsafe(24)

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def stream_error(self, message: str) -> bytes:
        return b"data: " + orjson.dumps(error_payload(503, message)) + b"\r\n\r\n"

    def _usage(self, reply: Reply, *, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens}
        if final:
            usage["candidatesTokenCount"] = reply.completion_tokens
        usage["totalTokenCount"] = reply.prompt_tokens + (reply.completion_tokens if final else 0)
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        if self.thinking and final:
            usage["thoughtsTokenCount"] = THOUGHT_TOKENS
            usage["totalTokenCount"] += THOUGHT_TOKENS
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        return usage

    def _response(self, parts: list[dict[str, Any]], reply: Reply, *, final: bool) -> dict[str, Any]:
        if self.content_filter == "prompt":
            return {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": self._usage(reply, final=final),
                "modelVersion": self.model,
                "responseId": self.response_id,
            }
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if self.content_filter == "completion":
            candidate = {"content": {"parts": [], "role": "model"}} if final else candidate
        if final:
            candidate["finishReason"] = "SAFETY" if self.content_filter else FINISH_REASONS[reply.finish]
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(reply, final=final),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }

    def _parts(self, reply: Reply) -> list[dict[str, Any]]:
        call = reply.tool_call
        if call is None:
            return [{"text": reply.text}]
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": orjson.loads(call.arguments)}}
        if self.thinking:  # thinking models sign their function calls; the signature must come back
            part["thoughtSignature"] = self.signature
        return [part]

    def _thought(self) -> list[dict[str, Any]]:
        return [{"text": THOUGHT_TEXT, "thought": True}] if self.include_thoughts else []

    def completion(self, reply: Reply) -> bytes:
        return orjson.dumps(self._response(self._thought() + self._parts(reply), reply, final=True))

    def stream(self, reply: Reply) -> StreamScript:
        # Gemini streams text in pieces but a function call whole, in one chunk.
        pieces = [[{"text": p}] for p in reply.pieces] if reply.tool_call is None else [self._parts(reply)]
        if self.include_thoughts:
            pieces.insert(0, self._thought())
        responses = [self._response(parts, reply, final=False) for parts in pieces]
        responses.append(self._response([{"text": ""}], reply, final=True))
        if self.sse:
            frames = [b"data: " + orjson.dumps(r) + b"\r\n\r\n" for r in responses]
            return StreamScript(head=[], content=frames[:-1], tail=frames[-1:])
        frames = [(b"," if i else b"") + b"\r\n" + orjson.dumps(r) for i, r in enumerate(responses)]
        return StreamScript(head=[b"["], content=frames[:-1], tail=[frames[-1], b"]"])
