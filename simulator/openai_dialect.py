"""OpenAI's Chat Completions wire format for a planned reply: `n` choices, logprobs, usage, SSE."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from simulator.asgi import SSE_HEADERS, Headers, StreamScript
from simulator.reply import Reply, ToolCall

SYSTEM_FINGERPRINT = "fp_sim0001"
DONE_FRAME = b"data: [DONE]\n\n"
# Alternatives offered in top_logprobs after the chosen token, each less likely than the last.
_ALTERNATIVES = (" the", " a", ",", ".", " and", " of", " to", " in", " is", " that")


@dataclass(frozen=True, slots=True)
class Sampling:
    """The request's fields that shape the answer's envelope rather than its text."""

    choices: int = 1
    logprobs: bool = False
    top_logprobs: int = 0


def token_logprob(token: str, position: int, top: int) -> dict[str, Any]:
    """One `logprobs.content` entry: the chosen token first among its `top` alternatives, as OpenAI
    lists them (most likely first); values are deterministic, negative and distinct."""
    chosen = -round(0.001 + 0.013 * (position % 7), 6)
    alternatives = [alt for alt in _ALTERNATIVES if alt != token][: max(0, top - 1)]
    listed = [(token, chosen)] + [(alt, round(chosen - 2.5 - i, 6)) for i, alt in enumerate(alternatives)]
    return {
        "token": token,
        "logprob": chosen,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": text, "logprob": value, "bytes": list(text.encode())} for text, value in listed[:top]
        ],
    }


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


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


def headers() -> Headers:
    return [
        (b"x-request-id", b"req_" + secrets.token_hex(16).encode()),
        (b"openai-processing-ms", b"1"),
    ]


class OpenAIDialect:
    """Renders a planned reply as a `chat.completion` object or a `chat.completion.chunk` event stream."""

    def __init__(self, *, model: str, include_usage: bool, sampling: Sampling = Sampling()) -> None:
        self.model = model
        self.include_usage = include_usage
        self.sampling = sampling
        self.id = "chatcmpl-" + secrets.token_hex(14)
        self.created = int(time.time())
        self.headers = headers()
        self.stream_headers = SSE_HEADERS

    def error(self, status: int, message: str) -> bytes:
        return orjson.dumps(error_payload(status, message))

    def usage(self, reply: Reply) -> dict[str, Any]:
        completion_tokens = reply.completion_tokens * self.sampling.choices  # each choice is generated
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": reply.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def call_of(self, reply: Reply, index: int) -> ToolCall | None:
        """Each choice's tool call has its own id, as separate generations do."""
        call = reply.tool_call
        if call is None or index == 0:
            return call
        return ToolCall(id=f"{call.id[:-2]}{index:02d}", name=call.name, arguments=call.arguments)

    def logprobs(self, pieces: tuple[str, ...] | list[str], start: int = 0) -> dict[str, Any] | None:
        if not self.sampling.logprobs:
            return None
        top = self.sampling.top_logprobs
        return {
            "content": [token_logprob(p, start + i, top) for i, p in enumerate(pieces)],
            "refusal": None,
        }

    def completion(self, reply: Reply) -> bytes:
        choices = []
        for index in range(self.sampling.choices):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
            }
            call = self.call_of(reply, index)
            if call is not None:
                message["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                ]
            else:
                message["content"] = reply.text
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": self.logprobs(() if call is not None else reply.pieces),
                    "finish_reason": reply.finish,
                }
            )
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": choices,
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

    def _delta(
        self, delta: dict[str, Any], finish: str | None = None, *, index: int = 0, logprobs: Any = None
    ) -> bytes:
        return self._chunk([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}])

    def _head(self, reply: Reply, index: int) -> bytes:
        call = self.call_of(reply, index)
        if call is None:
            return self._delta({"role": "assistant", "content": "", "refusal": None}, index=index)
        tool_call = {
            "index": 0,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        delta = {"role": "assistant", "content": None, "tool_calls": [tool_call], "refusal": None}
        return self._delta(delta, index=index)

    def _piece(self, reply: Reply, piece: str, position: int, index: int) -> bytes:
        if reply.tool_call is not None:
            return self._delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, index=index)
        return self._delta({"content": piece}, index=index, logprobs=self.logprobs([piece], position))

    def stream(self, reply: Reply) -> StreamScript:
        """Choices interleave piece by piece, each chunk naming its choice's `index`, as OpenAI sends them."""
        n = self.sampling.choices
        head = [self._head(reply, index) for index in range(n)]
        if n == 1 and not self.sampling.logprobs and reply.tool_call is None:
            content = self._content_frames(reply.pieces)
        else:
            content = [
                self._piece(reply, piece, position, index)
                for position, piece in enumerate(reply.pieces)
                for index in range(n)
            ]
        tail = [self._delta({}, reply.finish, index=index) for index in range(n)]
        if self.include_usage:
            tail.append(self._chunk([], self.usage(reply)))
        tail.append(DONE_FRAME)
        return StreamScript(head=head, content=content, tail=tail)

    def _content_frames(self, pieces: tuple[str, ...]) -> list[bytes]:
        """Content chunks differ only in their text: splice it into one pre-rendered frame (the hot path)."""
        marker = "\x00sim\x00"
        template = self._delta({"content": marker})
        prefix, _, suffix = template.partition(orjson.dumps(marker))
        return [prefix + orjson.dumps(piece) + suffix for piece in pieces]
