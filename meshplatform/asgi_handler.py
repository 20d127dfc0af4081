"""The gateway's ASGI handler: a streaming body limit (413 before buffering), Server-Sent Events
sent as they are, over the thread-free request cycle of `meshplatform.framework`; and static files
served before that cycle (meshplatform/static_files.py); the ASGI lifespan protocol, for the worker's
drain on SIGTERM (meshplatform/draining.py)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from contextlib import aclosing
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestAborted

from meshplatform.draining import lifespan_serve, request_finished, request_started
from meshplatform.errors import GatewayError, PayloadTooLarge, RequestTimeout
from meshplatform.event_stream import EventStreamResponse
from meshplatform.framework import Scope, ThreadFreeASGIHandler
from meshplatform.memory import IdleTrimmer
from meshplatform.request_ids import new_request_id
from meshplatform.static_files import StaticFiles


class MeshASGIHandler(ThreadFreeASGIHandler):
    """Rejects oversized bodies with 413 before buffering them (Django 5.2 reads the whole body
    before `DATA_UPLOAD_MAX_MEMORY_SIZE` is checked) and sends Server-Sent Events without
    Django's per-part re-chunking."""

    def __init__(self) -> None:
        super().__init__()
        self.static_files = StaticFiles()
        self.trimmer = IdleTrimmer()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # Django's handler refuses it; the worker's drain lives there
            await lifespan_serve(receive, send)
            return
        await super().__call__(scope, receive, send)

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        request_started()  # counted for the drain: a worker exits once its requests are settled
        try:
            if self.static_files.matches(scope["path"]):  # the only cost static files add to the proxy path
                await self.static_files.serve(scope, receive, send)
                return
            self.trimmer.request_started()
            try:
                await super().handle(scope, receive, send)
            finally:
                self.trimmer.request_finished()
        finally:
            request_finished()

    async def read_request_body(self, scope: Scope, receive: Any, send: Any) -> IO[bytes] | None:
        try:
            return await self.read_limited_body(scope, receive)
        except RequestAborted:
            return None
        except (PayloadTooLarge, RequestTimeout) as error:
            await self.send_error(error, send)
            return None

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

    async def read_limited_body(self, scope: Scope, receive: Any) -> IO[bytes]:
        limit: int = settings.MESH_MAX_BODY_BYTES
        if scope.get("path") == "/v1/files":  # uploads: the file limit plus multipart framing
            limit = settings.MESH_FILES_MAX_BYTES + 64 * 1024
        declared = 0
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                declared = int(value)
                if declared > limit:
                    raise PayloadTooLarge(f"Request body exceeds the {limit} byte limit.", param="body")
        # Handed to the request and closed by handle(), so no context manager here.
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        pace = BodyPace(declared)
        size = 0
        try:
            while True:
                message = await pace.receive(receive, size)
                if message["type"] == "http.disconnect":
                    raise RequestAborted()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body exceeds the {limit} byte limit.", param="body")
                body_file.write(chunk)
                if not message.get("more_body", False):
                    break
        except BaseException:
            body_file.close()
            raise
        body_file.seek(0)
        return body_file

    async def send_error(self, error: GatewayError, send: Any) -> None:
        from meshplatform.errors import error_response

        request_id = new_request_id()
        response = error_response(error, request_id)
        response["X-Request-Id"] = request_id
        response["Connection"] = "close"
        await self.send_response(response, send)


class BodyPace:
    """The deadline a request body must arrive by: MESH_BODY_READ_GRACE_S, plus the time its
    size takes at MESH_BODY_MIN_RATE_BPS (its Content-Length, or what has arrived so far).

    A body that trickles in (slowloris) or stops short of its Content-Length is cut with 408
    when the deadline passes, instead of holding a connection and a worker's memory for as long
    as the client likes.
    """

    def __init__(self, declared_size: int) -> None:
        self.started = time.monotonic()
        self.declared = declared_size
        self.grace: float = settings.MESH_BODY_READ_GRACE_S
        self.rate: float = settings.MESH_BODY_MIN_RATE_BPS

    def deadline(self, received: int) -> float:
        return self.started + self.grace + max(self.declared, received) / self.rate

    async def receive(self, receive: Any, received: int) -> Any:
        remaining = self.deadline(received) - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                return await receive()
        except TimeoutError:
            raise RequestTimeout(
                f"The request body arrived too slowly ({received} of "
                f"{self.declared or 'unknown'} bytes in {time.monotonic() - self.started:.1f} s; at least "
                f"{self.rate:g} bytes/s after {self.grace:g} s are needed).",
                param="body",
            ) from None
