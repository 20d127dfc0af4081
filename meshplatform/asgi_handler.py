"""Django's ASGI handler with two fixes the proxy path needs: a streaming body limit, no thread hop
on close."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from contextlib import aclosing
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from meshplatform.errors import PayloadTooLarge
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import new_request_id

Scope = dict[str, Any]


class MeshASGIHandler(ASGIHandler):
    """Rejects oversized bodies with 413 before buffering them, closes responses in the loop, and
    sends Server-Sent Events without Django's per-part re-chunking.

    Django 5.2 reads the whole body before `DATA_UPLOAD_MAX_MEMORY_SIZE` is checked and
    closes every response through `sync_to_async` (a thread hop per request). Closing in
    the loop is safe: no sync `request_finished` receiver is connected (see
    `MeshplatformConfig.ready`), and the closers Django adds (`request.close`, closing
    in-memory uploads) do no blocking I/O.
    """

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_limited_body(scope, receive)
        except RequestAborted:
            return
        except PayloadTooLarge as error:
            await self.send_error(error, send)
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request() -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away while we sent
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()  # a disconnect cancels the view (and its upstream call)
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            response.close()
        body_file.close()

    async def send_response(self, response: Any, send: Any) -> None:
        if not isinstance(response, EventStreamResponse):
            await super().send_response(response, send)
            return
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
        try:
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async with aclosing(response.events) as events:  # its cleanup runs now, even on a disconnect
                async for part in events:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body"})
        finally:
            if response.on_close is not None:  # also when cancelled before the first event
                await response.on_close()

    async def read_limited_body(self, scope: Scope, receive: Any) -> Any:
        limit: int = settings.MESH_MAX_BODY_BYTES
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise PayloadTooLarge(f"Request body exceeds the {limit} byte limit.", param="body")
        # Handed to the request and closed by handle(), so no context manager here.
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                body_file.close()
                raise PayloadTooLarge(f"Request body exceeds the {limit} byte limit.", param="body")
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def send_error(self, error: PayloadTooLarge, send: Any) -> None:
        from meshplatform.errors import error_response

        request_id = new_request_id()
        response = error_response(error, request_id)
        response["X-Request-Id"] = request_id
        response["Connection"] = "close"
        await self.send_response(response, send)
