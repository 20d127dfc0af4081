"""Reading an upstream's Server-Sent Events straight off the response's byte stream.

The parser is ours (the WHATWG "event stream interpretation": `\\r\\n`, `\\n` or `\\r` line ends,
multi-line `data`, comments, `event` / `id` / `retry`, a leading BOM): the upstream's reads go in
as bytes, events come out, with no per-chunk generator stack and no private API of a library.
Each complete line is decoded on its own: line ends are ASCII, so a UTF-8 character cut across
two reads is always whole by the time its line is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson

from routing.http_client import UpstreamResponse

BOM = b"\xef\xbb\xbf"
# A NamedTuple's generated __new__ is a Python function; tuple.__new__ makes the same tuple in C.
_event_new = tuple.__new__


class ServerSentEvent(NamedTuple):
    """One dispatched event (field names as in the spec and httpx-sse; a tuple: cheapest to make)."""

    data: str = ""
    event: str = "message"
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEDecoder:
    """Incremental decoder: `feed` each read, `close` at the end of the body.

    An event is dispatched at its blank line when any field was set (as httpx-sse does; the spec
    drops data-less events, which OpenAI-style upstreams never send). A partial event at the end
    of the body is dropped, as the spec says.
    """

    __slots__ = ("_data", "_event", "_id", "_pending", "_retry", "_started")

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line (or a `\r` that may be half of `\r\n`)
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._pending + chunk if self._pending else chunk
        if not self._started:
            if len(buffer) < len(BOM) and BOM.startswith(buffer):
                self._pending = buffer
                return []
            self._started = True
            if buffer.startswith(BOM):
                buffer = buffer[len(BOM) :]
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # its `\n` may be in the next read
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, rest = buffer.split(b"\n")
            self._pending = rest + b"\r" if held else rest
        else:
            *lines, self._pending = buffer.split(b"\n")
        events: list[ServerSentEvent] = []
        for line in lines:
            if line[:6] == b"data: ":  # nearly every line an upstream sends
                self._data.append(line[6:].decode("utf-8", "replace"))
            elif not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            else:
                self._field(line)
        return events

    def close(self) -> list[ServerSentEvent]:
        """The end of the body: a last line without its line end still counts; a last event
        without its blank line does not."""
        rest, self._pending = self._pending, b""
        events = self.feed(rest + b"\n") if rest else []
        self._data, self._event, self._retry = [], "", None
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" starts a comment
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> ServerSentEvent | None:
        if not (self._data or self._event or self._id or self._retry is not None):
            return None
        data = self._data
        text = data[0] if len(data) == 1 else "\n".join(data)
        event = _event_new(ServerSentEvent, (text, self._event or "message", self._id, self._retry))
        self._data, self._event, self._retry = [], "", None  # the last event id persists
        return event


async def sse_events(response: UpstreamResponse) -> AsyncIterator[ServerSentEvent]:
    """Each event as soon as its blank line arrived."""
    decoder = SSEDecoder()
    async for data in response.aiter_raw():
        for event in decoder.feed(data):
            yield event
    for event in decoder.close():
        yield event
