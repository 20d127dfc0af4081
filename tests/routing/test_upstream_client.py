"""The upstream client over a real socket: what an upstream sent before its connection broke."""

from __future__ import annotations

import asyncio

from routing.http_client import (
    UpstreamResponse,
    UpstreamTransportError,
    upstream_send,
    upstream_session_close,
)

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENTS = b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'


async def broken_stream_server() -> asyncio.Server:
    """Answers once with two events in one chunk, then drops the connection mid-body."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD + f"{len(EVENTS):x}\r\n".encode() + EVENTS + b"\r\n")
        await writer.drain()
        writer.transport.abort()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def test_bytes_that_arrived_with_the_break_are_handed_on_before_the_error() -> None:
    async def run() -> tuple[bytes, BaseException | None]:
        server = await broken_stream_server()
        port = server.sockets[0].getsockname()[1]
        response: UpstreamResponse = await upstream_send(
            url=f"http://127.0.0.1:{port}/v1/chat/completions", headers={}, body=b"{}", timeout=5
        )
        # By the time the body is read the data and the break are both waiting in aiohttp's
        # reader, which is the order a busy worker sees them in.
        await asyncio.sleep(0.2)
        received, failure = b"", None
        try:
            async for data in response.aiter_raw():
                received += data
        except UpstreamTransportError as error:
            failure = error
        await response.aclose()
        await upstream_session_close()
        server.close()
        await server.wait_closed()
        return received, failure

    received, failure = asyncio.run(run())
    assert received == EVENTS
    assert isinstance(failure, UpstreamTransportError)
