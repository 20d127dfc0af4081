"""A finished request leaves no reference cycle behind: its Django request and response are freed
by reference counting as soon as the handler returns, not by a later full collection (which the
raised gc thresholds of meshplatform/asgi.py make rare, so under load such garbage piled up).

Driven through the handler directly, with a receive that behaves as uvicorn's (the body, then
`http.disconnect` once the response is complete): the collector is off while the request runs,
so whatever it finds afterwards is what reference counting could not free."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from meshplatform.asgi_handler import MeshASGIHandler


async def _request(handler: MeshASGIHandler, path: str) -> list[Mapping[str, Any]]:
    sent: list[Mapping[str, Any]] = []
    complete = asyncio.Event()
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await handler(scope, receive, send)
    return sent


def test_a_finished_request_leaves_no_cyclic_garbage() -> None:
    async def scenario() -> list[object]:
        handler = MeshASGIHandler()
        await _request(handler, "/healthz")  # imports and caches of a first request settle here
        gc.collect()
        gc.disable()
        try:
            sent = await _request(handler, "/healthz")
            assert sent[0]["status"] == 200
            gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collection finds, to look at it
            gc.collect()
            return [o for o in gc.garbage if isinstance(o, HttpRequest | HttpResponseBase)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()

    assert asyncio.run(scenario()) == []
