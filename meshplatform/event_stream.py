"""A Server-Sent Events response whose parts go to the client as they are, one ASGI message each."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from django.http import StreamingHttpResponse


class EventStreamResponse(StreamingHttpResponse):
    """`text/event-stream` over an async generator of ready-encoded events.

    `MeshASGIHandler` sends `events` directly: Django's generic streaming path wraps every part in
    three more async generators and a re-chunking loop, which costs ~10 µs per relayed chunk.
    Other consumers (Django's test client) still iterate it as a plain streaming response.

    `close` is awaited once the response is over, however it ended, even if the events were never
    iterated (a client gone before the first one): an async generator that never started does
    not run its `finally` on `aclose()`, so cleanup that must happen cannot live only there.
    """

    def __init__(
        self, events: AsyncGenerator[bytes, None], *, close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(events, content_type="text/event-stream")
        self.events = events
        self.on_close = close
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"
