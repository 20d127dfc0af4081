"""Raw ASGI plumbing: the exchange being served, body reading, and response senders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


class StreamDropped(Exception):
    """Raised inside the app to make uvicorn close the connection mid-body, as a crashing upstream would."""


@dataclass
class Exchange:
    """One HTTP request being served, plus the log entry tests will read back."""

    scope: Scope
    receive: Receive
    send: Send
    path: str
    query: str
    headers: dict[str, str]
    raw_body: bytes
    log_entry: dict[str, Any] = field(default_factory=dict)

    def bearer_token(self) -> str:
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""


def decode_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return bytes(body)
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, payload: Any, extra_headers: Headers | None = None) -> None:
    headers = JSON_HEADERS + extra_headers if extra_headers else JSON_HEADERS
    await send_bytes(send, status, orjson.dumps(payload), headers)


@dataclass(frozen=True)
class StreamScript:
    """Pre-rendered SSE frames: `content` frames are paced and counted by faults, head and tail are not."""

    head: list[bytes]
    content: list[bytes]
    tail: list[bytes]


async def stream_frames(
    exchange: Exchange,
    script: StreamScript,
    headers: Headers,
    *,
    chunk_delay_s: float,
    drop_after_chunks: int | None,
) -> None:
    """Send each frame as its own body message so every chunk reaches the socket when produced."""
    send = exchange.send
    # Slow streams watch for the client going away so they stop pacing dead connections
    # and so tests can see that the gateway cancelled its upstream call.
    watcher = asyncio.ensure_future(exchange.receive()) if chunk_delay_s > 0 else None
    loop = asyncio.get_running_loop()
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # Pace against a schedule, not sleep-after-send, so our own load never stretches the stream.
        paced_from = loop.time()
        for frame in script.head:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        for sent, frame in enumerate(script.content):
            if drop_after_chunks is not None and sent >= drop_after_chunks:
                exchange.log_entry["outcome"] = "dropped"
                raise StreamDropped(f"dropped after {sent} chunks")
            if chunk_delay_s > 0:
                await asyncio.sleep(paced_from + (sent + 1) * chunk_delay_s - loop.time())
                if watcher is not None and watcher.done():
                    exchange.log_entry["outcome"] = "client_disconnected"
                    exchange.log_entry["chunks_sent"] = sent
                    return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if drop_after_chunks is not None:
            exchange.log_entry["outcome"] = "dropped"
            raise StreamDropped(f"dropped after {len(script.content)} chunks")
        for frame in script.tail:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        exchange.log_entry["outcome"] = "completed"
    finally:
        if watcher is not None:
            watcher.cancel()
