"""Pure translation between the Responses API and chat completions: input items → chat messages,
a request → a chat request body, a `chat.completion` → output items and usage, and the response
object both paths render. (The streamed direction is `responses_api.events`.)"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from meshplatform.errors import BadRequest
from responses_api.schema import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    FunctionToolChoice,
    InputItem,
    MessageItem,
    ReasoningItem,
    ResponsesRequest,
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def unsupported(loc: list[str | int], message: str, *, status: int = 400) -> BadRequest:
    """A clear refusal naming the field (`input[2].type`, `tools[0].type`…); nothing is sent upstream."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return BadRequest(
        f"{where}: {message}",
        param=".".join(str(part) for part in loc),
        details=[{"loc": ["body", *loc], "msg": message, "type": "unsupported"}],
        http_status=status,
        code="unsupported_value" if status == 400 else None,
    )


# --- input items as stored (OpenAI's item shapes, each with an id) ---------------------------


def stored_input_items(items: list[InputItem]) -> list[dict[str, Any]]:
    """The request's input items as `GET /v1/responses/{id}/input_items` lists them (ids given)."""
    stored: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, MessageItem):
            stored.append(_stored_message(item))
        elif isinstance(item, FunctionCallItem):
            stored.append(
                {
                    "id": item.id or new_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                }
            )
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else [p.model_dump() for p in item.output]
            stored.append(
                {
                    "id": item.id or new_id("fco"),
                    "type": "function_call_output",
                    "status": "completed",
                    "call_id": item.call_id,
                    "output": output,
                }
            )
        elif isinstance(item, ReasoningItem):
            stored.append({**item.model_dump(), "id": item.id or new_id("rs")})
        else:  # kept as sent: OpenAI takes it natively, the chat translation refuses it by name
            stored.append(item.model_dump())
    return stored


def _stored_message(item: MessageItem) -> dict[str, Any]:
    if isinstance(item.content, str):
        kind = "output_text" if item.role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": item.content}
        if kind == "output_text":
            part["annotations"] = []
        content = [part]
    else:
        content = [part.model_dump(exclude_none=True) for part in item.content]
    return {
        "id": item.id or new_id("msg"),
        "type": "message",
        "role": item.role,
        "status": "completed",
        "content": content,
    }


# --- items → chat messages -------------------------------------------------------------------


def chat_messages(
    items: list[dict[str, Any]], *, first_input: int, instructions: str | None
) -> list[dict[str, Any]]:
    """The conversation as chat messages: `instructions` as the system message, then every item
    (the context before `first_input`, then the request's input). Consecutive function calls join
    the assistant message before them; reasoning items are not sent (chat has no place for them)."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    thinking: list[dict[str, Any]] = []  # a reasoning item's provider state, for the next assistant turn
    for index, item in enumerate(items):
        at = index - first_input
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_chat_message(item, at))
        elif kind == "function_call":
            call: dict[str, Any] = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if isinstance(item.get("thought_signature"), str):
                call["thought_signature"] = item["thought_signature"]
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else _joined_text(output, ["input", at, "output"])
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "reasoning":
            blocks = item.get("thinking_blocks")
            thinking = [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []
            continue
        elif at >= 0:
            raise unsupported(
                ["input", at, "type"],
                f"input items of type {kind!r} are not supported by this model's provider (built-in "
                "tool calls and item references are forwarded to OpenAI models only)",
            )
        else:  # an earlier native answer's built-in tool call: nothing chat can carry
            continue
        if thinking and messages[-1]["role"] == "assistant":
            messages[-1]["thinking_blocks"] = thinking
        thinking = []
    return messages


def _chat_message(item: dict[str, Any], at: int) -> dict[str, Any]:
    role, content = item["role"], item["content"]
    if role in ("assistant", "system", "developer"):
        text = _joined_text(content, ["input", at, "content"])
        return (
            {"role": role, "content": text or None}
            if role == "assistant"
            else {"role": role, "content": text}
        )
    return {
        "role": role,
        "content": [_chat_part(part, ["input", at, "content", n]) for n, part in enumerate(content)],
    }


def _joined_text(parts: list[dict[str, Any]], loc: list[str | int]) -> str:
    texts: list[str] = []
    for index, part in enumerate(parts):
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(part["refusal"])
        else:
            raise unsupported(
                [*loc, index, "type"], f"parts of type {kind!r} are only supported in user messages"
            )
    return "".join(texts)


def _chat_part(part: dict[str, Any], loc: list[str | int]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        if not part.get("image_url"):
            raise unsupported(
                [*loc, "image_url"], "an image is given by image_url (file_id is not supported)"
            )
        return {
            "type": "image_url",
            "image_url": {"url": part["image_url"], "detail": part.get("detail", "auto")},
        }
    if kind == "input_file":
        ref = {
            name: part[name] for name in ("file_data", "file_id", "filename") if part.get(name) is not None
        }
        if "file_data" not in ref and "file_id" not in ref:
            raise unsupported([*loc, "file_data"], "a file is given by file_data or file_id")
        return {"type": "file", "file": ref}
    raise unsupported([*loc, "type"], f"content parts of type {kind!r} are not supported")


# --- the request → a chat request --------------------------------------------------------------


def chat_request_body(
    request: ResponsesRequest, items: list[dict[str, Any]], *, first_input: int
) -> dict[str, Any]:
    """The chat completions body the pipeline runs for `request`, over the conversation `items`."""
    body: dict[str, Any] = {
        "messages": chat_messages(items, first_input=first_input, instructions=request.instructions)
    }
    if request.model is not None:
        body["model"] = request.model
    if request.tools:
        body["tools"] = chat_tools(request)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(request)
    response_format = chat_response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "user", "session_id", "models"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def chat_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    """Function tools in chat's shape; a built-in tool is refused naming `tools[i].type`."""
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(request.tools or []):
        if not isinstance(tool, FunctionTool):
            raise unsupported(
                ["tools", index, "type"],
                f"the built-in tool {tool.type!r} is only available on OpenAI models; other providers take "
                "'function' tools",
            )
        function: dict[str, Any] = {"name": tool.name}
        for name in ("description", "parameters", "strict"):
            value = getattr(tool, name)
            if value is not None:
                function[name] = value
        tools.append({"type": "function", "function": function})
    return tools


def chat_tool_choice(request: ResponsesRequest) -> str | dict[str, Any]:
    choice = request.tool_choice
    if isinstance(choice, str):
        return choice
    if isinstance(choice, FunctionToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    kind = getattr(choice, "type", None)
    raise unsupported(
        ["tool_choice", "type"], f"tool_choice of type {kind!r} is not supported; use a function"
    )


def chat_response_format(request: ResponsesRequest) -> dict[str, Any] | None:
    spec = request.text.format if request.text is not None else None
    if spec is None or spec.type == "text":
        return None
    if spec.type == "json_object":
        return {"type": "json_object"}
    if spec.name is None:
        raise unsupported(["text", "format", "name"], "a json_schema format needs a name", status=422)
    schema: dict[str, Any] = {"name": spec.name, "schema": spec.schema_ or {"type": "object"}}
    if spec.strict is not None:
        schema["strict"] = spec.strict
    if spec.description is not None:
        schema["description"] = spec.description
    return {"type": "json_schema", "json_schema": schema}


# --- chat's answer → the response object ------------------------------------------------------


def message_item(text: str, *, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call_item(
    *, item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(text: str, *, item_id: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion's message as output items: reasoning, then text, then function calls."""
    items: list[dict[str, Any]] = []
    if message.get("reasoning_content") or message.get("thinking_blocks"):
        reasoning = reasoning_item(str(message.get("reasoning_content") or ""), item_id=new_id("rs"))
        if message.get("thinking_blocks"):  # Anthropic's signed thinking, sent back on the next turn
            reasoning["thinking_blocks"] = message["thinking_blocks"]
        items.append(reasoning)
    content = message.get("content")
    if isinstance(content, str) and content:
        items.append(message_item(content, item_id=new_id("msg")))
    elif message.get("refusal"):
        item = message_item("", item_id=new_id("msg"))
        item["content"] = [{"type": "refusal", "refusal": str(message["refusal"])}]
        items.append(item)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        item = function_call_item(
            item_id=new_id("fc"),
            call_id=str(call.get("id") or new_id("call")),
            name=str(function.get("name", "")),
            arguments=str(function.get("arguments", "")),
        )
        if call.get("thought_signature"):  # Gemini's, needed to continue after the call
            item["thought_signature"] = call["thought_signature"]
        items.append(item)
    return items


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Chat's usage object in the Responses API's shape (reasoning tokens are part of output tokens)."""
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """The response's status and incomplete_details for chat's finish_reason."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def request_echo(request: ResponsesRequest) -> dict[str, Any]:
    """The request's settings as the response object repeats them."""
    tools = [tool.model_dump(exclude_none=True) for tool in request.tools or []]
    for tool in tools:
        tool.setdefault("strict", None)
        tool.setdefault("parameters", None)
    text_format = request.text.format if request.text is not None else None
    choice = request.tool_choice
    return {
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "parallel_tool_calls": True if request.parallel_tool_calls is None else request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": request.reasoning.effort if request.reasoning else None,
            "summary": request.reasoning.summary if request.reasoning else None,
        },
        "store": request.store,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {
            "format": text_format.model_dump(by_alias=True, exclude_none=True)
            if text_format
            else {"type": "text"}
        },
        "tool_choice": "auto"
        if choice is None
        else choice
        if isinstance(choice, str)
        else choice.model_dump(),
        "tools": tools,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": "disabled",
        "user": request.user,
    }


def response_object(
    *,
    response_id: str,
    created_at: int,
    model: str,
    echo: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_details: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """OpenAI's `response` object."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete_details,
        "model": model,
        "output": output,
        "usage": usage,
        **echo,
    }


def completion_response(
    *, response_id: str, created_at: int, model: str, echo: dict[str, Any], completion: dict[str, Any]
) -> dict[str, Any]:
    """A whole `chat.completion` as the response object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    status, incomplete = status_of(choice.get("finish_reason"))
    return response_object(
        response_id=response_id,
        created_at=created_at,
        model=model,
        echo=echo,
        status=status,
        output=output_items(choice.get("message") or {}),
        usage=response_usage(completion.get("usage")),
        incomplete_details=incomplete,
    )


def pricing_body(request: ResponsesRequest, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat body for a request only OpenAI can take natively: the conversation as one text, so
    holds and estimates price it by its size, and the request's output bound."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": orjson.dumps(items).decode()}]}
    if request.instructions:
        body["messages"].insert(0, {"role": "system", "content": request.instructions})
    for name, value in (
        ("model", request.model),
        ("max_completion_tokens", request.max_output_tokens),
        ("session_id", request.session_id),
        ("models", request.models),
    ):
        if value is not None:
            body[name] = value
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def native_response(
    *, response_id: str, created_at: int, model: str, echo: dict[str, Any], completion: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's own `response` object, under Mesh's id, model and the request's settings."""
    usage = completion.get("usage")
    details = completion.get("incomplete_details")
    error = completion.get("error")
    return response_object(
        response_id=response_id,
        created_at=created_at,
        model=model,
        echo=echo,
        status=str(completion.get("status") or "completed"),
        output=list(completion.get("output") or []),
        usage=usage if isinstance(usage, dict) else None,
        incomplete_details=details if isinstance(details, dict) else None,
        error=error if isinstance(error, dict) else None,
    )
