"""Flushing the write-ahead stream into PostgreSQL through a consumer group (see usage/recording.py for why).

Each run first takes over entries another flusher read but never acknowledged (it died, or
the database failed under it) once they sat idle MESH_USAGE_CLAIM_IDLE_S, then reads new
ones, in batches, until the stream is empty or its time budget is spent. An entry is XACKed
and XDELed only after the transaction holding its row committed; storing is idempotent, so
the worst a crash can cause is the same batch stored twice, which stores nothing new.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis.exceptions import ResponseError

from meshplatform.redis import SyncRedis, get_sync_redis
from usage.codec import UndecodableEvent, event_decode, event_encode
from usage.recording import DEAD_LETTERS, PAYLOAD_FIELD, SANITIZED_COUNT, STREAM
from usage.store import usage_events_store
from usage.types import UsageEventData

logger = logging.getLogger(__name__)

GROUP = "ledger-flushers"
DEAD_LETTERS_MAXLEN = 100_000
IDLE_CONSUMER_MS = 3_600_000  # consumers with nothing pending, idle this long, are forgotten
RETIRED_REASON = "dated before the ledger's retention horizon: its month was dropped (usage.retention)"

Entry = tuple[bytes, dict[bytes, bytes] | None]


@dataclass(slots=True)
class FlushResult:
    read: int = 0
    stored: int = 0
    reclaimed: int = 0
    dead: int = 0
    sanitized: int = 0


def flush_consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def usage_stream_flush(
    *,
    consumer: str | None = None,
    batch_size: int | None = None,
    claim_idle_ms: int | None = None,
    time_budget_s: float | None = None,
) -> FlushResult:
    """Move what the stream holds into the usage_event table; returns what it did."""
    redis = get_sync_redis()
    consumer = consumer or flush_consumer_name()
    batch = batch_size or settings.MESH_USAGE_FLUSH_BATCH
    idle_ms = int(settings.MESH_USAGE_CLAIM_IDLE_S * 1000) if claim_idle_ms is None else claim_idle_ms
    deadline = time.monotonic() + (
        settings.MESH_USAGE_FLUSH_BUDGET_S if time_budget_s is None else time_budget_s
    )
    result = FlushResult()
    _group_ensure(redis)
    cursor = b"0-0"
    while time.monotonic() < deadline:
        cursor, claimed = _claim_stale(redis, consumer, idle_ms, cursor, batch)
        result.reclaimed += len(claimed)
        _flush_entries(redis, claimed, result)
        if cursor in (b"0-0", "0-0"):
            break
    while time.monotonic() < deadline:
        entries = _read_new(redis, consumer, batch)
        if not entries:
            _forget_idle_consumers(redis, consumer)
            break
        _flush_entries(redis, entries, result)
    return result


def _group_ensure(redis: SyncRedis) -> None:
    """From id 0: entries written before the group existed (or after Redis lost it) are still read.

    Looks before creating: an error reply on every run would be noise, and the embedded server
    of `make run` (fakeredis over TCP) drops the connection after any error reply.
    """
    if redis.exists(STREAM):
        groups: Any = redis.xinfo_groups(STREAM)
        if any(group["name"] in (GROUP, GROUP.encode()) for group in groups):
            return
    try:
        redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as error:  # another flusher created it meanwhile
        if "BUSYGROUP" not in str(error):
            raise


def _claim_stale(
    redis: SyncRedis, consumer: str, idle_ms: int, cursor: bytes, batch: int
) -> tuple[bytes, list[Entry]]:
    reply: Any = redis.xautoclaim(STREAM, GROUP, consumer, idle_ms, cursor, count=batch)
    return reply[0], list(reply[1])


def _read_new(redis: SyncRedis, consumer: str, batch: int) -> list[Entry]:
    reply: Any = redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=batch)
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


def _flush_entries(redis: SyncRedis, entries: list[Entry], result: FlushResult) -> None:
    if not entries:
        return
    events: list[UsageEventData] = []
    dead: list[tuple[bytes, str]] = []
    for _entry_id, fields in entries:
        raw = (fields or {}).get(PAYLOAD_FIELD, b"")
        try:
            events.append(event_decode(raw))
        except UndecodableEvent as error:
            dead.append((raw, str(error)))
    stored = usage_events_store(events=events)  # raises on database outage: entries stay pending
    dead += [(event_encode(event), "refused by the database") for event in stored.rejected]
    dead += [(event_encode(event), RETIRED_REASON) for event in stored.retired]
    ids = [entry_id for entry_id, _ in entries]
    with redis.pipeline(transaction=True) as pipe:
        for raw, reason in dead:
            pipe.xadd(
                DEAD_LETTERS, {PAYLOAD_FIELD: raw, b"reason": reason.encode()}, maxlen=DEAD_LETTERS_MAXLEN
            )
        if stored.sanitized:
            pipe.incrby(SANITIZED_COUNT, len(stored.sanitized))
        pipe.xack(STREAM, GROUP, *ids)
        pipe.xdel(STREAM, *ids)
        pipe.execute()
    if dead:
        logger.error("%d usage events set aside in %s; inspect them there", len(dead), DEAD_LETTERS)
    result.read += len(entries)
    result.stored += stored.stored
    result.dead += len(dead)
    result.sanitized += len(stored.sanitized)


def _forget_idle_consumers(redis: SyncRedis, me: str) -> None:
    """Each flusher process joins the group under its own name; drop the names of long-gone ones."""
    for info in redis.xinfo_consumers(STREAM, GROUP):
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name != me and not info["pending"] and info["idle"] > IDLE_CONSUMER_MS:
            redis.xgroup_delconsumer(STREAM, GROUP, name)
