"""Where Mesh leans on Django's internals, in one place: what it changes, why, and what a Django
upgrade must re-check. `tests/meshplatform/test_framework_pins.py` fails when any of it moves.

Why at all: under ASGI, Django runs every sync piece of a request's cycle (a sync signal receiver,
`response.close()`) through `sync_to_async`, one thread hop each (~50-100 µs and a thread
switch); the proxy path must pay none. So:

1. Request signals off (`request_signals_disconnect`, called from `MeshplatformConfig.ready`).
   Django connects `reset_queries` and `close_old_connections` to `request_started` and
   `close_old_connections` to `request_finished`: sync receivers, so a thread hop per request.
2. Database connections are scoped where the database is used instead: `database_request_start`
   / `database_request_end` around admin pages and the DRF management APIs (by
   `RequestScopeMiddleware`), and `database_call_scope` around each ORM call of the async path
   (by `meshplatform.db.db_call`, in the executor's reused threads).
3. The ASGI request cycle (`ThreadFreeASGIHandler.handle`) is Django 5.2's `ASGIHandler.handle`
   with two changes: the request body is read by a hook (`read_request_body`, which may answer
   the request itself, e.g. a 413 before buffering) and responses are closed in the event loop,
   not through `sync_to_async` (safe: with 1. no sync `request_finished` receiver is left, and
   the closers Django adds — `request.close`, closing uploaded files — do no blocking I/O). And a
   request the server cancels (uvicorn's graceful-shutdown timeout, meshplatform/draining.py)
   cancels its view and waits for it, where Django's leaves the view running on its own.
4. `handle` drops its list of the two tasks before it returns. The disconnect listener ends
   every request with a RequestAborted that `task.result()` re-raises in `handle`'s frame: its
   traceback then holds the frame, which holds the tasks, which hold the exception. That cycle
   kept each request (its Django request and response, the upstream response and connection
   objects: ~95 objects) alive until a full collection, which the raised gc thresholds of
   meshplatform/asgi.py make rare: under load, request state piled up in the oldest generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, connections, reset_queries
from django.dispatch import Signal
from django.urls import set_script_prefix

from meshplatform.draining import requests_cut_begin

Scope = dict[str, Any]

# The sync receivers Django's `django.db` connects, which (1.) disconnects.
REQUEST_SIGNAL_RECEIVERS: tuple[tuple[Signal, Callable[..., None]], ...] = (
    (signals.request_started, reset_queries),
    (signals.request_started, close_old_connections),
    (signals.request_finished, close_old_connections),
)

# The Django code (3.) copies or calls, as SHA-256 of its source in the pinned Django (5.2.19).
# A new Django with other source fails the pin test: compare the change with what this module
# does, adapt it, then record the new digests.
PINNED_SOURCES = {
    "django.core.handlers.asgi.ASGIHandler.handle": (
        "98faeb5bef800331e6a8002fbc96b30e4122a23438ae45a047190a531ea11323"
    ),
}


def request_signals_disconnect() -> None:
    """(1.) Disconnect Django's sync request-signal receivers (their work is done by 2.)."""
    for signal, receiver in REQUEST_SIGNAL_RECEIVERS:
        signal.disconnect(receiver)


def database_request_start() -> None:
    """(2.) What the `request_started` receivers did: forget logged queries, drop stale connections."""
    reset_queries()
    close_old_connections()


def database_request_end() -> None:
    """(2.) Give this request's connections back (to psycopg's pool): its thread is about to end."""
    connections.close_all()


@contextlib.contextmanager
def database_call_scope() -> Iterator[None]:
    """(2.) Around one ORM call from async code: a usable connection before, returned after
    (with psycopg's pool and CONN_MAX_AGE=0, `close_old_connections` gives it back)."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


class ThreadFreeASGIHandler(ASGIHandler):
    """(3.) Django's ASGI request cycle without a thread hop; subclasses read the body."""

    async def read_request_body(self, scope: Scope, receive: Any, send: Any) -> IO[bytes] | None:
        """The request body as a file, or None when the request was answered (or abandoned)."""
        try:
            body: IO[bytes] = await self.read_body(receive)
        except RequestAborted:
            return None
        return body

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        body_file = await self.read_request_body(scope, receive, send)
        if body_file is None:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
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
        try:
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # (3.) The server cancels this request (its graceful-shutdown timeout passed): Django
                # would leave the view running, orphaned, until the loop closes under it; here it is
                # cancelled too and awaited, so a stream bills what it sent before the worker exits.
                # Then the request just ends (uvicorn closes its connection, logging one line that it
                # was not completed): the worker is exiting, and a traceback per cut stream says nothing.
                requests_cut_begin()
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
                body_file.close()
                return
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
                response.close()  # in the loop: see (3.)
            body_file.close()
        finally:
            tasks.clear()  # (4.) no cycle through the re-raised RequestAborted's traceback
