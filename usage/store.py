"""Writing usage events to PostgreSQL: idempotent bulk inserts that mark their (day, tenant) rollups stale."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import DataError, IntegrityError, connection, transaction

from usage.codec import event_needs_escaping, event_row
from usage.models import UsageEvent, UsageRollupStale
from usage.retention import retention_horizon
from usage.types import UsageEventData

logger = logging.getLogger(__name__)

# Sorted slices, so concurrent writers lock stale rows in one order and never deadlock.
STALE = UsageRollupStale._meta.db_table
_MARK_STALE_SQL = (
    f"INSERT INTO {STALE} (day, tenant_id, generation) VALUES {{values}} "
    f"ON CONFLICT (day, tenant_id) DO UPDATE SET generation = {STALE}.generation + 1"
)


@dataclass(slots=True)
class StoreResult:
    stored: int = 0
    rejected: list[UsageEventData] = field(default_factory=list)
    # Stored with values escaped (see usage.codec): their request ids, for the operator's count.
    sanitized: list[str] = field(default_factory=list)
    # Dated before the retention horizon (usage.retention): not stored, to be set aside.
    retired: list[UsageEventData] = field(default_factory=list)


def event_time(event: UsageEventData) -> datetime:
    """The row's created_at, and so its partition: the request's start (usage.ledger)."""
    return datetime.fromtimestamp(event.started_at, UTC)


def event_day(event: UsageEventData) -> date:
    return event_time(event).date()


def _mark_stale(slices: set[tuple[date, int]]) -> None:
    ordered = sorted(slices)
    values = ", ".join(["(%s, %s, 1)"] * len(ordered))
    params = [item for pair in ordered for item in pair]
    with connection.cursor() as cursor:
        cursor.execute(_MARK_STALE_SQL.format(values=values), params)


# Every column a stream's final entry rewrites over its provisional one.
_FINAL_FIELDS = [
    f.name
    for f in UsageEvent._meta.concrete_fields
    if f.name not in ("id", "request_id", "tenant", "api_key")
]


def _supersedes(event: UsageEventData, current: UsageEventData) -> bool:
    """A final entry wins over a provisional one; a later provisional update (a stream's progress,
    written every few seconds) over an earlier one."""
    if current.provisional and not event.provisional:
        return True
    return current.provisional and event.provisional and (event.latency_ms or 0) > (current.latency_ms or 0)


def _latest_per_request(events: list[UsageEventData]) -> list[UsageEventData]:
    """One event per request_id: the one that supersedes the others."""
    chosen: dict[str, UsageEventData] = {}
    for event in events:
        current = chosen.get(event.request_id)
        if current is None or _supersedes(event, current):
            chosen[event.request_id] = event
    return sorted(chosen.values(), key=lambda e: e.request_id)


def _replace_provisional(events: list[UsageEventData]) -> None:
    """Rewrite the provisional rows these events supersede (finals, and later progress updates)."""
    # Only streams write provisional entries: other events cannot replace anything.
    by_id = {event.request_id: event for event in events if event.streamed or event.provisional}
    if not by_id:
        return
    current = (
        UsageEvent.objects.filter(request_id__in=by_id, provisional=True)
        .order_by("request_id")
        .select_for_update()
        .values_list("request_id", "pk", "latency_ms")
    )
    rows = []
    for request_id, pk, latency_ms in current:
        event = by_id[request_id]
        if event.provisional and (event.latency_ms or 0) <= (latency_ms or 0):
            continue  # an older progress update arriving late (a reclaimed batch): keep the newer
        row = event_row(event)
        row.pk = pk
        rows.append(row)
    UsageEvent.objects.bulk_update(rows, _FINAL_FIELDS)


def _insert(events: list[UsageEventData]) -> list[UsageEventData]:
    """One transaction: the events (a request_id already present is skipped, except that a final
    entry or a later progress update replaces a stream's provisional one) and their stale marks.
    Returns the events not stored because retention dropped their month (usage.retention).

    Skipping works through the unique (request_id, created_at): every entry of a request carries
    its start as created_at, so a duplicate delivery conflicts with the row already there."""
    events = _latest_per_request(events)
    with transaction.atomic():
        horizon = retention_horizon(share_lock=True)
        retired = [e for e in events if horizon is not None and event_time(e) < horizon]
        if retired:
            events = [e for e in events if e not in retired]
        UsageEvent.objects.bulk_create([event_row(event) for event in events], ignore_conflicts=True)
        _replace_provisional(events)
        if events:
            _mark_stale({(event_day(event), event.tenant_id) for event in events})
    if retired:
        logger.error(
            "%d usage events dated before the ledger's retention horizon %s set aside: %s",
            len(retired),
            horizon,
            ", ".join(event.request_id for event in retired[:20]),
        )
    return retired


def usage_events_store(*, events: list[UsageEventData]) -> StoreResult:
    """Store `events` exactly once each, however many times they are handed in.

    A batch the database refuses for its data (say, a key deleted before its event was flushed)
    is retried one event at a time, so one bad event is set aside instead of blocking every
    other one. Any other database error propagates: the caller keeps the events and retries.
    """
    if not events:
        return StoreResult()
    try:
        retired = _insert(events)
        sanitized = [event.request_id for event in events if event_needs_escaping(event)]
        if sanitized:
            logger.warning(
                "%d usage events stored with escaped values (NUL characters): %s",
                len(sanitized),
                ", ".join(sanitized[:20]),
            )
        return StoreResult(stored=len(events) - len(retired), sanitized=sanitized, retired=retired)
    except (IntegrityError, DataError) as error:  # the data, not the database: find the culprit
        if len(events) == 1:
            logger.error("usage event %s refused by the database: %s", events[0].request_id, error)
            return StoreResult(rejected=list(events))
    result = StoreResult()
    for event in events:
        single = usage_events_store(events=[event])
        result.stored += single.stored
        result.rejected += single.rejected
        result.sanitized += single.sanitized
        result.retired += single.retired
    return result
