"""Draining a web worker on SIGTERM: /readyz fails first, then uvicorn's graceful shutdown, then the
writes still on their way (ledger events, the auto-pipelined Redis batch) go out before it exits.

Why this shape. uvicorn already does the middle: on SIGTERM it stops accepting connections, lets
the open requests finish for `timeout_graceful_shutdown`, then cancels what is left
(`uvicorn.server.Server.shutdown`); and its master replaces workers one at a time on SIGHUP, each
new one serving before the old one is told to stop (`Multiprocess.restart_all`). What it does not
do is done here, over the ASGI lifespan protocol (`--lifespan on`):

1. A notice. A worker that stops accepting at once leaves a load balancer sending it requests until
   it notices refused connections. So SIGTERM first turns /readyz into 503 "draining" for
   MESH_DRAIN_NOTICE_S while the worker still serves, and only then reaches uvicorn: lifespan
   startup wraps uvicorn's own SIGTERM handler, and sets uvicorn's graceful timeout to
   MESH_DRAIN_TIMEOUT_S, so that setting is the one place the drain is configured.
2. Settling what the timeout cut. uvicorn cancels the requests still running and goes straight on
   to lifespan shutdown; a cut stream bills what it sent on its way out (`routing.relay`, as when
   a client leaves; `requests_cut` tells the ledger why it ended), so shutdown first waits (at most
   SETTLE_S) for the requests in flight to have done that.
3. The last writes. Then each app's drain hook (MESH_DRAIN_HOOKS: ledger events bound for
   PostgreSQL while Redis is down) and the loop's auto-pipelined Redis batch are waited for:
   whatever is still queued when the event loop ends is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from meshplatform.redis_batch import redis_batches_sent

logger = logging.getLogger(__name__)

# After the drain timeout: how long the cut requests get to bill themselves (one Redis round trip,
# at most REDIS_COMMAND_TIMEOUT_S, or a database insert) and the last writes to go out.
SETTLE_S = 10.0

SignalHandler = Callable[[int, FrameType | None], Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class WorkerDrain:
    """This worker process's drain (one per process: a uvicorn worker runs one event loop)."""

    def __init__(self) -> None:
        self.draining = False  # SIGTERM arrived: /readyz says so
        self.cut = False  # the drain timeout passed: requests still running are being cancelled
        self.in_flight = 0
        self.notice: asyncio.TimerHandle | None = None

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1


_drain = WorkerDrain()


def worker_draining() -> bool:
    """This worker was told to stop: it serves what it holds and wants no new requests."""
    return _drain.draining


def requests_cut() -> bool:
    """This worker's drain timeout passed: a request ending now without its answer was cut by the
    shutdown, not left by its client."""
    return _drain.cut


def requests_cut_begin() -> None:
    """The server cancels the requests still running (the drain timeout passed)."""
    if not _drain.cut:
        logger.warning(
            "worker %d: drain timeout passed, cutting the %d requests still running (billed as they stand)",
            os.getpid(),
            _drain.in_flight,
        )
    _drain.cut = True


def request_started() -> None:
    _drain.request_started()


def request_finished() -> None:
    _drain.request_finished()


async def lifespan_serve(
    receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    """The ASGI lifespan protocol: the drain installed at startup, settled at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            drain_install()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await drain_settle()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _uvicorn_server(handler: object) -> Any | None:
    """The uvicorn `Server` whose SIGTERM handler this is (its bound `handle_exit`), else None."""
    server = getattr(handler, "__self__", None)
    if not hasattr(getattr(server, "config", None), "timeout_graceful_shutdown"):
        return None
    return server


def drain_install() -> None:
    """Put the notice in front of uvicorn's SIGTERM handler and give uvicorn the drain timeout."""
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    server = _uvicorn_server(uvicorn_exit)
    if server is None or threading.current_thread() is not threading.main_thread():
        logger.warning("not run by uvicorn's signal handling: SIGTERM stops this worker without a drain")
        return
    assert callable(uvicorn_exit)
    server.config.timeout_graceful_shutdown = settings.MESH_DRAIN_TIMEOUT_S
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        # In a signal handler: only wake the loop (logging here could interleave with a log call
        # the signal interrupted).
        loop.call_soon_threadsafe(_drain_begin, loop, uvicorn_exit, sig)

    signal.signal(signal.SIGTERM, on_sigterm)


def _drain_begin(loop: asyncio.AbstractEventLoop, uvicorn_exit: SignalHandler, sig: int) -> None:
    if _drain.draining:  # a second SIGTERM: no more notice
        if _drain.notice is not None:
            _drain.notice.cancel()
            _stop_accepting(uvicorn_exit, sig)
        return
    _drain.draining = True
    notice: float = settings.MESH_DRAIN_NOTICE_S
    logger.info(
        "worker %d draining: %d requests in flight; /readyz answers 503 for %g s, then no new "
        "connections and up to %g s for open requests to finish",
        os.getpid(),
        _drain.in_flight,
        notice,
        settings.MESH_DRAIN_TIMEOUT_S,
    )
    _drain.notice = loop.call_later(notice, _stop_accepting, uvicorn_exit, sig)


def _stop_accepting(uvicorn_exit: SignalHandler, sig: int) -> None:
    _drain.notice = None
    logger.info("worker %d stops accepting connections: %d requests in flight", os.getpid(), _drain.in_flight)
    uvicorn_exit(sig, None)  # uvicorn's graceful shutdown from here


async def drain_settle() -> None:
    """At lifespan shutdown (uvicorn's graceful wait is over): the cut requests bill themselves,
    then the apps' pending writes and the loop's Redis batch go out, within SETTLE_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while _drain.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if _drain.in_flight:
        logger.error("worker %d exits with %d requests not settled", os.getpid(), _drain.in_flight)
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (path, import_string(path)) for path in settings.MESH_DRAIN_HOOKS
    ]
    steps.append(("the auto-pipelined Redis batch", redis_batches_sent))
    for name, step in steps:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 1.0)):
                await step()
        except TimeoutError:
            logger.error("worker %d exits before %s completed", os.getpid(), name)
    logger.info("worker %d drained", os.getpid())
