"""An event-stream response is closed (its stream settled) however the send ends, even when the
client's disconnect cancels it before the first event was asked for: an async generator that
never started does not run its `finally` on `aclose()`, so settlement cannot live only there.

Under uvicorn that moment is a send of the response start waiting for a paused transport; no
client can pause it on cue, so this drives the handler's send directly (the one seam)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from meshplatform.asgi_handler import MeshASGIHandler
from meshplatform.event_stream import EventStreamResponse


def test_a_response_cancelled_before_its_first_event_still_runs_its_close() -> None:
    happened: list[str] = []

    async def events() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: {}\n\n"
        finally:
            happened.append("generator finally")  # never reached: the generator never starts

    async def close() -> None:
        happened.append("closed")

    async def scenario() -> None:
        response = EventStreamResponse(events(), close=close)
        start_sent = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start_sent.set()
                await asyncio.Event().wait()  # a paused transport that never drains

        sending = asyncio.create_task(MeshASGIHandler().send_response(response, send))
        await start_sent.wait()
        sending.cancel()  # the client is gone
        with contextlib.suppress(asyncio.CancelledError):
            await sending

    asyncio.run(scenario())

    assert happened == ["closed"]
