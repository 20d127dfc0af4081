"""OpenAI Chat Completions and Models, byte-compatible with what api.openai.com sends."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from simulator.asgi import SSE_HEADERS, Exchange, Headers, StreamScript, send_json
from simulator.engine import serve
from simulator.faults import Fault
from simulator.reply import Prompt, Reply, Tool, ToolMode, count_words, plan_reply

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
)
SYSTEM_FINGERPRINT = "fp_sim0001"
DONE_FRAME = b"data: [DONE]\n\n"

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class RequestError(Exception):
    """The request is not a valid Chat Completions request; answered 400 like OpenAI does."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def error_payload(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code or default_code,
        }
    }


def request_headers() -> Headers:
    return [
        (b"x-request-id", b"req_" + secrets.token_hex(16).encode()),
        (b"openai-processing-ms", b"1"),
    ]


async def send_error(
    exchange: Exchange,
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
) -> None:
    exchange.log_entry["outcome"] = "error"
    await send_json(
        exchange.send,
        status,
        error_payload(status, message, param, code),
        request_headers(),
    )


async def list_models(exchange: Exchange) -> None:
    problem = auth_problem(exchange)
    if problem is not None:
        await send_error(exchange, *problem)
        return
    data = [{"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in MODELS]
    await send_json(exchange.send, 200, {"object": "list", "data": data}, request_headers())


def auth_problem(exchange: Exchange) -> tuple[int, str] | None:
    return None if exchange.bearer_token() else (401, "You didn't provide an API key.")


def model_of(exchange: Exchange, body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    """`POST /v1/chat/completions`, authenticated and its fault resolved: validate like OpenAI, then serve."""
    try:
        prompt = parse_prompt(body)
    except RequestError as error:
        await send_error(exchange, 400, str(error), error.param, error.code)
        return
    stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    dialect = OpenAIDialect(
        model=body["model"],
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )
    call_id = "call_" + secrets.token_hex(12)
    await serve(
        exchange,
        dialect,
        fault,
        lambda: plan_reply(prompt, fault, call_id),
        stream=stream,
    )


def parse_prompt(body: Any) -> Prompt:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise RequestError("you must provide a model parameter", "model", "missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "Missing required parameter: 'messages'.",
            "messages",
            "missing_required_parameter",
        )
    words = images = 0
    last_user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
        }:
            raise RequestError(
                f"Invalid value for 'messages[{index}]'.",
                f"messages[{index}]",
                "invalid_value",
            )
        text, image_count = _content_text(message.get("content"))
        words += count_words(text)
        images += image_count
        for call in message.get("tool_calls") or []:
            words += (
                count_words(str((call.get("function") or {}).get("arguments", "")))
                if isinstance(call, dict)
                else 0
            )
        if message["role"] == "user":
            last_user_text = text
    last = messages[-1]
    tool_result = _content_text(last.get("content"))[0] if last["role"] in {"tool", "function"} else None
    tools, mode, forced = _tools(body)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return Prompt(
        word_count=words,
        message_count=len(messages),
        image_count=images,
        last_user_text=last_user_text,
        tool_result=tool_result,
        tools=tools,
        tool_mode=mode,
        forced_tool=forced,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
    )


def _content_text(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if isinstance(part, dict):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") in {"image_url", "input_image"}:
                images += 1
    return " ".join(texts), images


def _tools(body: dict[str, Any]) -> tuple[tuple[Tool, ...], ToolMode, str | None]:
    tools: list[Tool] = []
    for index, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type", "function") != "function":
            continue  # custom and hosted tools: accepted as OpenAI does, never called by the simulator
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError(
                f"Missing required parameter: 'tools[{index}].function'.",
                f"tools[{index}].function",
            )
        tools.append(Tool(name=function["name"], parameters=function.get("parameters") or {}))
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        return tuple(tools), "required" if allowed.get("mode") == "required" else "auto", None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return tuple(tools), "required", name if isinstance(name, str) else None
    mode: ToolMode = choice if choice in ("none", "auto", "required") else "auto"
    return tuple(tools), mode, None


class OpenAIDialect:
    """Renders a planned reply as a `chat.completion` object or a `chat.completion.chunk` event stream."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-" + secrets.token_hex(14)
        self.created = int(time.time())
        self.headers = request_headers()
        self.stream_headers = SSE_HEADERS

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": reply.cached_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self, reply: Reply) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_call is not None:
            call = reply.tool_call
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ]
        else:
            message["content"] = reply.text
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": reply.finish,
                    }
                ],
                "usage": self.usage(reply),
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        )

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])

    def stream(self, reply: Reply) -> StreamScript:
        call = reply.tool_call
        if call is None:
            head = self._delta({"role": "assistant", "content": "", "refusal": None})
            content = self._content_frames(reply.pieces)
        else:
            head = self._delta(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ],
                    "refusal": None,
                }
            )
            content = [
                self._delta({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                for p in reply.pieces
            ]
        tail = [self._delta({}, reply.finish)]
        if self.include_usage:
            tail.append(self._chunk([], self.usage(reply)))
        tail.append(DONE_FRAME)
        return StreamScript(head=[head], content=content, tail=tail)

    def _content_frames(self, pieces: tuple[str, ...]) -> list[bytes]:
        """Content chunks differ only in their text: splice it into one pre-rendered frame (the hot path)."""
        marker = "\x00sim\x00"
        template = self._delta({"content": marker})
        prefix, _, suffix = template.partition(orjson.dumps(marker))
        return [prefix + orjson.dumps(piece) + suffix for piece in pieces]
