"""The provider-independent serving sequence: delay, scripted error, malformed body, then JSON or SSE."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol

from simulator.asgi import (
    SSE_HEADERS,
    Exchange,
    Headers,
    StreamScript,
    send_bytes,
    stream_frames,
)
from simulator.faults import Fault
from simulator.reply import Reply

MALFORMED_JSON = b"<html><body>502 Bad Gateway (simulated malformed upstream body)</body></html>"
MALFORMED_SSE = b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "trunc\n\n'


class Dialect(Protocol):
    """One provider's wire format; `headers` are the ones it adds to every answer (request ids and such)."""

    headers: Headers
    stream_headers: Headers  # content type of a streamed answer

    def error(self, status: int, message: str) -> bytes: ...

    def completion(self, reply: Reply) -> bytes: ...

    def stream(self, reply: Reply) -> StreamScript: ...


def retry_after_headers(status: int, retry_after: float | None) -> Headers:
    if retry_after is None and status != 429:
        return []
    seconds = 1.0 if retry_after is None else retry_after
    return [
        (b"retry-after", str(math.ceil(seconds)).encode()),
        (b"retry-after-ms", str(int(seconds * 1000)).encode()),
    ]


async def serve(
    exchange: Exchange,
    dialect: Dialect,
    fault: Fault,
    plan: Callable[[], Reply],
    *,
    stream: bool,
) -> None:
    if fault.delay_s > 0:
        await asyncio.sleep(fault.delay_s)
    if fault.status is not None and fault.status >= 400:
        message = fault.error_message or f"Simulated upstream error {fault.status}"
        headers = [(b"content-type", b"application/json"), *dialect.headers]
        headers += retry_after_headers(fault.status, fault.retry_after)
        exchange.log_entry["outcome"] = "error"
        body = (
            fault.error_body.encode()
            if fault.error_body is not None
            else dialect.error(fault.status, message)
        )
        await send_bytes(exchange.send, fault.status, body, headers)
        return
    if fault.malformed:
        exchange.log_entry["outcome"] = "malformed"
        if stream:
            await send_bytes(exchange.send, 200, MALFORMED_SSE, SSE_HEADERS + dialect.headers)
        else:
            await send_bytes(
                exchange.send,
                200,
                MALFORMED_JSON,
                [(b"content-type", b"application/json"), *dialect.headers],
            )
        return
    if fault.raw_body is not None:
        await _serve_raw(exchange, dialect, fault, fault.raw_body.encode(), stream=stream)
        return
    reply = plan()
    if not stream:
        exchange.log_entry["outcome"] = "completed"
        await send_bytes(
            exchange.send,
            200,
            dialect.completion(reply),
            [(b"content-type", b"application/json"), *dialect.headers],
        )
        return
    await stream_frames(
        exchange,
        reshaped(with_stream_error(dialect, dialect.stream(reply), fault), fault),
        dialect.stream_headers + dialect.headers,
        chunk_delay_s=fault.chunk_delay_ms / 1000,
        drop_after_chunks=fault.drop_after_chunks,
    )


async def _serve_raw(
    exchange: Exchange, dialect: Dialect, fault: Fault, body: bytes, *, stream: bool
) -> None:
    exchange.log_entry["outcome"] = "completed"
    if not stream:
        headers = [(b"content-type", b"application/json"), *dialect.headers]
        await send_bytes(exchange.send, 200, body, headers)
        return
    await stream_frames(
        exchange,
        reshaped(StreamScript(head=[], content=[body], tail=[]), fault),
        dialect.stream_headers + dialect.headers,
        chunk_delay_s=fault.chunk_delay_ms / 1000,
        drop_after_chunks=None,
    )


def with_stream_error(dialect: Dialect, script: StreamScript, fault: Fault) -> StreamScript:
    """The stream cut after `fault.stream_error_after_chunks` content events by the provider's own
    error event (dialects without one end the stream with an OpenAI-style error object)."""
    cut = fault.stream_error_after_chunks
    if cut is None:
        return script
    message = fault.error_message or "Overloaded"
    render = getattr(dialect, "stream_error", None)
    frame = render(message) if render is not None else b"data: " + dialect.error(500, message) + b"\n\n"
    return StreamScript(head=script.head, content=script.content[:cut], tail=[frame])


def reshaped(script: StreamScript, fault: Fault) -> StreamScript:
    """The stream as `fault.crlf` and `fault.split_bytes` ask (unchanged when neither is set)."""

    def line_ends(frames: list[bytes]) -> list[bytes]:
        # JSON escapes newlines inside strings, so every raw LF is framing.
        return [frame.replace(b"\n", b"\r\n") for frame in frames] if fault.crlf else frames

    head, content, tail = line_ends(script.head), line_ends(script.content), line_ends(script.tail)
    if not fault.split_bytes:
        return StreamScript(head=head, content=content, tail=tail)
    data, size = b"".join([*head, *content, *tail]), fault.split_bytes
    return StreamScript(head=[], content=[data[i : i + size] for i in range(0, len(data), size)], tail=[])
