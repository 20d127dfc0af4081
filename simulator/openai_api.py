"""OpenAI Chat Completions and Models, byte-compatible with what api.openai.com sends."""

from __future__ import annotations

import secrets
from typing import Any

from simulator.asgi import Exchange, send_json
from simulator.engine import serve
from simulator.faults import Fault
from simulator.openai_dialect import OpenAIDialect, Sampling, error_payload, headers
from simulator.reply import TEXT, OutputFormat, Prompt, Tool, ToolMode, count_words, plan_reply

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
)
MAX_CHOICES = 128
MAX_TOP_LOGPROBS = 20


class RequestError(Exception):
    """The request is not a valid Chat Completions request; answered 400 like OpenAI does."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


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
        headers(),
    )


async def list_models(exchange: Exchange) -> None:
    problem = auth_problem(exchange)
    if problem is not None:
        await send_error(exchange, *problem)
        return
    data = [{"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in MODELS]
    await send_json(exchange.send, 200, {"object": "list", "data": data}, headers())


def auth_problem(exchange: Exchange) -> tuple[int, str] | None:
    return None if exchange.bearer_token() else (401, "You didn't provide an API key.")


def model_of(exchange: Exchange, body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    """`POST /v1/chat/completions`, authenticated and its fault resolved: validate like OpenAI, then serve."""
    try:
        prompt = parse_prompt(body)
        sampling = parse_sampling(body)
    except RequestError as error:
        await send_error(exchange, 400, str(error), error.param, error.code)
        return
    stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    dialect = OpenAIDialect(
        model=body["model"],
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        sampling=sampling,
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
        output=parse_output_format(body.get("response_format")),
    )


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_sampling(body: dict[str, Any]) -> Sampling:
    """`n`, `logprobs` and `top_logprobs`, refused where OpenAI refuses them."""
    n = body.get("n")
    if n is None:
        n = 1
    if not _integer(n) or not 1 <= n <= MAX_CHOICES:
        raise RequestError(f"Invalid 'n': must be an integer from 1 to {MAX_CHOICES}.", "n", "invalid_value")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise RequestError("Invalid 'logprobs': expected a boolean.", "logprobs", "invalid_type")
    top = body.get("top_logprobs")
    if top is not None:
        if not _integer(top) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise RequestError(
                f"Invalid 'top_logprobs': must be an integer from 0 to {MAX_TOP_LOGPROBS}.",
                "top_logprobs",
                "invalid_value",
            )
        if not logprobs:
            raise RequestError(
                "Invalid value for 'top_logprobs': 'logprobs' must be set to true.",
                "top_logprobs",
                "invalid_value",
            )
    return Sampling(choices=n, logprobs=bool(logprobs), top_logprobs=top or 0)


def parse_output_format(raw: Any) -> OutputFormat:
    """`response_format`: text, json_object, or json_schema with its `schema`."""
    if raw is None:
        return TEXT
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return TEXT
    if kind == "json_object":
        return OutputFormat(kind="json_object")
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
                "missing_required_parameter",
            )
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise RequestError(
                "Invalid type for 'response_format.json_schema.schema': expected an object.",
                "response_format.json_schema.schema",
                "invalid_type",
            )
        return OutputFormat(kind="json_schema", schema=schema or {"type": "object"})
    raise RequestError(
        "Invalid value for 'response_format.type': expected one of 'text', 'json_object' or 'json_schema'.",
        "response_format.type",
        "invalid_value",
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
