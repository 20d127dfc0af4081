"""OpenAI's Responses API (`POST /v1/responses`), as api.openai.com answers it: the response object,
or its event stream, with usage including `output_tokens_details.reasoning_tokens`.

The request is read into the same `Prompt` the Chat Completions handler plans from, so a reply is
the one chat would give (text, a function call, structured output); `reasoning.effort` adds
reasoning tokens to the output, as reasoning models bill them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from simulator.asgi import SSE_HEADERS, Exchange, StreamScript
from simulator.engine import serve
from simulator.faults import Fault
from simulator.openai_api import RequestError, auth_problem, model_of, parse_prompt, send_error
from simulator.openai_dialect import error_payload, headers
from simulator.reply import Reply, plan_reply

__all__ = ["auth_problem", "handle", "model_of", "send_error"]

REASONING_TOKENS = {"minimal": 4, "low": 16, "medium": 64, "high": 256, "xhigh": 512}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return " ".join(
        str(part.get("text") or part.get("refusal") or "") for part in content if isinstance(part, dict)
    )


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the Chat Completions body it would be, for planning the reply."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise RequestError("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(f"Invalid value for 'input[{index}]'.", f"input[{index}]", "invalid_value")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))}
            )
    tools = [
        {"type": "function", "function": {"name": t.get("name"), "parameters": t.get("parameters") or {}}}
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages, "tools": tools}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        chat["tool_choice"] = choice
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": text_format.get("name", "schema"), "schema": text_format.get("schema")},
        }
    elif isinstance(text_format, dict) and text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    return chat


async def handle(exchange: Exchange, body: Any, fault: Fault) -> None:
    """`POST /v1/responses`, authenticated and its fault resolved."""
    try:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        prompt = parse_prompt(chat_view(body))
    except RequestError as error:
        await send_error(exchange, 400, str(error), error.param, error.code)
        return
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    dialect = ResponsesDialect(body=body, reasoning_tokens=REASONING_TOKENS.get(str(effort), 0))
    call_id = "call_" + secrets.token_hex(12)
    await serve(
        exchange,
        dialect,
        fault,
        lambda: plan_reply(prompt, fault, call_id),
        stream=body.get("stream") is True,
    )


class ResponsesDialect:
    """Renders a planned reply as a `response` object or its stream of events."""

    def __init__(self, *, body: dict[str, Any], reasoning_tokens: int) -> None:
        self.body = body
        self.reasoning_tokens = reasoning_tokens
        self.id = "resp_" + secrets.token_hex(24)
        self.item_id = "msg_" + secrets.token_hex(24)
        self.created = int(time.time())
        self.headers = headers()
        self.stream_headers = SSE_HEADERS
        self._sequence = 0

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def usage(self, reply: Reply) -> dict[str, Any]:
        output = reply.completion_tokens + self.reasoning_tokens
        return {
            "input_tokens": reply.prompt_tokens,
            "input_tokens_details": {"cached_tokens": reply.cached_tokens},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": reply.prompt_tokens + output,
        }

    def item(self, reply: Reply, *, done: bool) -> dict[str, Any]:
        status = "completed" if done else "in_progress"
        call = reply.tool_call
        if call is not None:
            return {
                "id": "fc_" + self.item_id[4:],
                "type": "function_call",
                "status": status,
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments if done else "",
            }
        content = [self.text_part(reply.text)] if done else []
        return {
            "id": self.item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def response(self, reply: Reply | None) -> dict[str, Any]:
        body = self.body
        status = "in_progress" if reply is None else "incomplete" if reply.finish == "length" else "completed"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model"),
            "output": [] if reply is None else [self.item(reply, done=True)],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": None if reply is None else self.usage(reply),
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def completion(self, reply: Reply) -> bytes:
        return orjson.dumps(self.response(reply))

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"

    def stream(self, reply: Reply) -> StreamScript:
        at = {"item_id": self.item(reply, done=False)["id"], "output_index": 0}
        head = [
            self._event("response.created", response=self.response(None)),
            self._event("response.in_progress", response=self.response(None)),
            self._event("response.output_item.added", output_index=0, item=self.item(reply, done=False)),
        ]
        if reply.tool_call is not None:
            content = [
                self._event("response.function_call_arguments.delta", **at, delta=p) for p in reply.pieces
            ]
            tail = [
                self._event(
                    "response.function_call_arguments.done",
                    **at,
                    name=reply.tool_call.name,
                    arguments=reply.text,
                ),
            ]
        else:
            head.append(
                self._event("response.content_part.added", **at, content_index=0, part=self.text_part(""))
            )
            content = [
                self._event("response.output_text.delta", **at, content_index=0, delta=p, logprobs=[])
                for p in reply.pieces
            ]
            tail = [
                self._event("response.output_text.done", **at, content_index=0, text=reply.text, logprobs=[]),
                self._event(
                    "response.content_part.done", **at, content_index=0, part=self.text_part(reply.text)
                ),
            ]
        tail.append(
            self._event("response.output_item.done", output_index=0, item=self.item(reply, done=True))
        )
        final = self.response(reply)
        tail.append(self._event(f"response.{final['status']}", response=final))
        return StreamScript(head=head, content=content, tail=tail)

    def stream_error(self, message: str) -> bytes:
        failed = {
            **self.response(None),
            "status": "failed",
            "error": {"code": "server_error", "message": message},
        }
        return self._event("response.failed", response=failed)
