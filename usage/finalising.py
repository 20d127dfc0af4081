"""Finalising what web workers that died left behind: in-flight notes and provisional stream entries.

Every request notes itself in flight (usage.recording.usage_open) before its upstream call; its
final entry deletes the note. A note still there once the request cannot be running any more (its
`finalise_after`, with every event written before then flushed) belongs to a worker that died
before billing it: it is stored as the request's entry (prompt estimate, error `worker_lost`,
`tokens_estimated`) unless an entry exists, and billed, its hold released.

A stream's provisional entry (written before its first byte, brought up to date every
MESH_STREAM_PROGRESS_INTERVAL_S) is replaced by its final entry when the stream ends, however it
ends, as long as the worker lives. A worker killed mid-stream leaves it provisional, and nothing
billed it to the spend counters. No stream outlives MESH_STREAM_MAX_S, so once an entry is older
than that (plus MESH_STREAM_FINALISE_GRACE_S) and every event written before then has been
flushed, no final entry can still come: the entry is made final as it stands (`tokens_estimated`,
error `stream_lost`) and what its request still holds against spend caps is given back. Its cost
is already in the spend counters: a stream bills its progress as it goes (keys.spend.spend_progress).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from keys.models import ApiKey
from keys.spend import spend_hold_release_sync, spend_settle_sync
from meshplatform.redis import get_sync_redis
from usage.codec import UndecodableEvent, event_decode
from usage.models import UsageEvent
from usage.recording import OPEN, STREAM
from usage.store import usage_events_store
from usage.types import UsageEventData

logger = logging.getLogger(__name__)

LOST = "stream_lost"
MONTHLY = ("monthly", "monthly")
BATCH = 500


def _flushed_until(now: float) -> float:
    """Every event written before this moment is in PostgreSQL (the oldest one still in the
    write-ahead stream, read or not, was written then)."""
    oldest = get_sync_redis().xrange(STREAM, count=1)
    if not oldest:
        return now
    entry_id = oldest[0][0]
    raw = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return min(now, int(raw.partition("-")[0]) / 1000)


def usage_provisional_finalise(*, older_than_s: float | None = None) -> int:
    """Finalise every in-flight note and provisional entry no request can still replace; returns
    how many. `older_than_s` (tests) overrides how old a provisional entry must be."""
    flushed_until = _flushed_until(time.time())
    finalised = _finalise_notes(flushed_until)
    if older_than_s is None:
        older_than_s = settings.MESH_STREAM_MAX_S + settings.MESH_STREAM_FINALISE_GRACE_S
    cutoff = datetime.fromtimestamp(flushed_until - older_than_s, UTC)
    while batch := _finalise_batch(cutoff):
        for row in batch:  # after the commit; a crash here leaves holds to their deadline
            spend_hold_release_sync(tenant_id=row.tenant_id, request_id=row.request_id)
        finalised += len(batch)
    if finalised:
        logger.warning("finalised %d provisional stream entries left by dead workers (estimated)", finalised)
    return finalised


def _finalise_batch(cutoff: datetime) -> list[UsageEvent]:
    with transaction.atomic():
        rows = list(
            UsageEvent.objects.filter(provisional=True, created_at__lt=cutoff)
            .select_for_update()
            .order_by("id")[:BATCH]
        )
        for row in rows:
            row.provisional, row.tokens_estimated, row.error_code = False, True, LOST
        UsageEvent.objects.bulk_update(rows, ["provisional", "tokens_estimated", "error_code"])
    return rows


def _stale_notes(flushed_until: float) -> Iterator[tuple[bytes, UsageEventData | None]]:
    for request_id, value in get_sync_redis().hscan_iter(OPEN, count=BATCH):
        finalise_after, _, payload = value.partition(b" ")
        try:
            if float(finalise_after) > flushed_until:
                continue  # may still be running, or its final entry may wait in the backlog
            yield request_id, event_decode(payload)
        except (ValueError, UndecodableEvent):
            logger.error("unreadable in-flight note %r dropped: %r", request_id, value[:200])
            yield request_id, None


def _finalise_notes(flushed_until: float) -> int:
    """Store and bill the notes of requests that died with their worker; returns how many."""
    stale = list(_stale_notes(flushed_until))
    events = [event for _, event in stale if event is not None]
    known = set(
        UsageEvent.objects.filter(request_id__in=[e.request_id for e in events]).values_list(
            "request_id", flat=True
        )
    )
    lost = [event for event in events if event.request_id not in known]
    usage_events_store(events=lost)
    periods = dict(
        (pk, (key_period, tenant_period))
        for pk, key_period, tenant_period in ApiKey.objects.filter(
            pk__in={e.key_id for e in lost}
        ).values_list("pk", "spend_cap_period", "tenant__spend_cap_period")
    )
    for event in lost:  # stored first: a crash here under-bills, which the counters' rebuild heals
        spend_settle_sync(
            tenant_id=event.tenant_id, key_id=event.key_id, periods=periods.get(event.key_id, MONTHLY),
            request_id=event.request_id, cost_usd=event.cost_usd, at=event.started_at,
        )  # fmt: skip
    if stale:
        get_sync_redis().hdel(OPEN, *(request_id for request_id, _ in stale))
    if lost:
        logger.warning("billed %d requests whose worker died before recording them (estimated)", len(lost))
    return len(lost)
