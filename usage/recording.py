"""Recording usage events from the pipeline: write-ahead to a Redis stream, flushed to PostgreSQL later.

Why this design. The ledger must not slow the client's response and must not lose an event
when a web process dies after the upstream answered. So the pipeline awaits exactly one
Redis round trip, an XADD of the encoded event, before the response's last byte leaves
(before a JSON answer is returned; before a stream's final `[DONE]`). It shares that round trip
with the request's billing script and with concurrent requests' writes (auto-pipelining, see
`meshplatform.redis_batch`), each caller still waiting for its own reply. Once
XADD returned, the event no longer depends on the web process: `usage.flushing` (a Celery
task on beat, every MESH_USAGE_FLUSH_INTERVAL_S) reads the stream through a consumer group,
bulk-inserts with ON CONFLICT DO NOTHING, then XACKs and XDELs. A flusher killed
between its insert and its XACK leaves the entries pending; another one takes them over
with XAUTOCLAIM and inserts them again, which the unique (request_id, created_at) turns into a
no-op (created_at is the request's start, the same in every entry of a request: usage.models). So
an event is written at least once to the stream and exactly once to the table.

The alternatives were worse on one side or the other: a synchronous INSERT costs the request
a thread hop and a database round trip (and PostgreSQL's latency tail); an asyncio task
after the response is lost with the process; a Celery message per request costs more CPU
than an XADD and still needs the same idempotence.

Durability is Redis's: run it with `appendonly yes` (appendfsync everysec) in production.
When Redis is unreachable the event goes straight to PostgreSQL from a background task (off
the request path, in the executor's threads); for MESH_USAGE_REDIS_RETRY_S after a failure
Redis is not tried again, so an outage does not cost every request a connect timeout.

MESH_USAGE_RECORDING=off skips all of this; it exists only so `make bench` can measure the
hot path with and without the ledger. Never run production with it off: nothing is billed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from django.conf import settings

from meshplatform.db import db_call
from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog
from meshplatform.redis_batch import redis_batched, redis_batched_nowait, redis_batched_soon
from usage.codec import event_encode
from usage.store import usage_events_store
from usage.types import UsageEventData

logger = logging.getLogger(__name__)
outage = OutageLog("the usage ledger stream")

# One hash tag for every ledger key, so they share a slot on Redis Cluster.
STREAM = "{mesh:usage}:events"
DEAD_LETTERS = "{mesh:usage}:dead"
# How many events were stored with escaped values (usage.codec), for the operator (/readyz).
SANITIZED_COUNT = "{mesh:usage}:sanitized"
# Requests in flight: request id -> "<finalise after (epoch s)> <encoded event>", written before the
# upstream call and deleted with the final entry. What a dead worker leaves here, beat finalises.
OPEN = "{mesh:usage}:open"
PAYLOAD_FIELD = b"e"

_redis_failed_at = 0.0
_background: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    _background.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_background.discard)


async def usage_open(*, event: UsageEventData, finalise_after: float) -> None:
    """Note a request in flight before its upstream call, as the entry to bill should its worker die
    before the final one is written (see usage.finalising). Awaited, so the note is in Redis before
    the upstream hears of the request (it shares the auto-pipelined round trip with concurrent
    requests' commands); a Redis failure only costs the note."""
    if (
        not settings.MESH_USAGE_RECORDING
        or time.monotonic() - _redis_failed_at < settings.MESH_USAGE_REDIS_RETRY_S
    ):
        return
    value = f"{finalise_after:.3f} ".encode() + event_encode(event)
    try:
        await redis_batched("HSET", OPEN, event.request_id, value)
    except REDIS_UNAVAILABLE as error:
        _redis_down(error)


async def usage_record(*, event: UsageEventData, opened: bool = False) -> None:
    """Make the request's ledger entry durable: one XADD (with `opened`, its in-flight note from
    `usage_open` deleted in the same batch), or a background insert if Redis is down."""
    if not settings.MESH_USAGE_RECORDING:
        return
    payload = event_encode(event)
    if time.monotonic() - _redis_failed_at >= settings.MESH_USAGE_REDIS_RETRY_S:
        try:
            if opened:
                redis_batched_nowait("HDEL", OPEN, event.request_id)
            await redis_batched("XADD", STREAM, "*", PAYLOAD_FIELD, payload)
        except REDIS_UNAVAILABLE as error:
            _redis_down(error)
        else:
            outage.recovered()
            return
    _keep(asyncio.get_running_loop().create_task(_insert_directly(event)))


def usage_record_queued(*, event: UsageEventData, opened: bool = False) -> asyncio.Future[object] | None:
    """`usage_record` for a caller that then awaits its billing script: the XADD is queued now, in
    the same pipeline, its reply handled by a callback (a failure sends the event to PostgreSQL as
    `usage_record` would). Saves the task and the gather a second await costs. Returns the XADD's
    reply, for `usage_record_written` once the caller's own command is answered."""
    if not settings.MESH_USAGE_RECORDING:
        return None
    payload = event_encode(event)
    if time.monotonic() - _redis_failed_at >= settings.MESH_USAGE_REDIS_RETRY_S:
        if opened:
            redis_batched_nowait("HDEL", OPEN, event.request_id)
        written = redis_batched_soon("XADD", STREAM, "*", PAYLOAD_FIELD, payload)
        written.add_done_callback(partial(_xadd_replied, event))
        return written
    _keep(asyncio.get_running_loop().create_task(_insert_directly(event)))
    return None


async def usage_record_written(written: asyncio.Future[object] | None) -> None:
    """Returns once a queued XADD is answered (or failed: its callback took care of the event).
    On one Redis its batch's replies came with the caller's, so this does not wait; on a Cluster
    the ledger's slot may live on another node than the billing's."""
    if written is not None and not written.done():
        await asyncio.wait([written])


def _xadd_replied(event: UsageEventData, written: asyncio.Future[object]) -> None:
    """The queued XADD's reply: on failure the event goes to PostgreSQL, as `usage_record` sends
    it. A refusal that is not an outage cannot reach the request any more (it was answered): it
    is logged as the bug it is, and the event is still stored."""
    if written.cancelled():  # only when the loop ends with the batch unsent
        error: BaseException = ConnectionError("the loop ended before the XADD was sent")
    elif (failure := written.exception()) is None:
        outage.recovered()
        return
    else:
        error = failure
    if isinstance(error, (*REDIS_UNAVAILABLE, ConnectionError)) and isinstance(error, Exception):
        _redis_down(error)
    else:
        logger.error("usage event XADD refused: %r; storing it directly", error)
    _keep(asyncio.get_running_loop().create_task(_insert_directly(event)))


async def usage_writes_drain() -> None:
    """Returns once the events on their way straight to PostgreSQL (Redis was down) are stored: a
    draining web worker waits for them (MESH_DRAIN_HOOKS) before its event loop ends."""
    while _background:
        await asyncio.wait(list(_background))


def _redis_down(error: Exception) -> None:
    global _redis_failed_at
    _redis_failed_at = time.monotonic()
    outage.failed(error)


_store = db_call(usage_events_store)


async def _insert_directly(event: UsageEventData) -> None:
    try:
        result = await _store(events=[event])
    except Exception:  # both Redis and PostgreSQL failed: the log line is the last copy of the event
        logger.exception("usage event LOST (Redis and database down): %s", event_encode(event).decode())
        return
    if result.rejected or result.retired:
        logger.error("usage event refused by the database: %s", event_encode(event).decode())
