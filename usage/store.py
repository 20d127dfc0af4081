"""Writing usage events: idempotent bulk inserts, with the rollup deltas they cause and the stale marks
that schedule folding those deltas into the rollups."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import DataError, IntegrityError, connection, transaction

from usage.codec import event_needs_escaping, event_row
from usage.deltas import METRIC_COLUMNS, DeltaBatch, EventMetrics
from usage.models import UsageEvent, UsageRollupStale
from usage.retention import retention_horizon
from usage.types import UsageEventData

logger = logging.getLogger(__name__)

# Sorted slices, so concurrent writers lock stale rows in one order and never deadlock. A mark
# written here comes with its deltas: `recompute` stays as it was (false for a new mark).
STALE = UsageRollupStale._meta.db_table
_MARK_STALE_SQL = (
    f"INSERT INTO {STALE} (day, tenant_id, generation, recompute) VALUES {{values}} "
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
    values = ", ".join(["(%s, %s, 1, false)"] * len(ordered))
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


def _replace_provisional(events: list[UsageEventData], deltas: DeltaBatch) -> None:
    """Rewrite the provisional rows these events supersede (finals, and later progress updates),
    and journal what each rewrite changed: the old row out of its group, the new one into its own
    (the model served can change between a stream's first entry and its last)."""
    # Only streams write provisional entries: other events cannot replace anything.
    by_id = {event.request_id: event for event in events if event.streamed or event.provisional}
    if not by_id:
        return
    current = (
        UsageEvent.objects.filter(request_id__in=by_id, provisional=True)
        .order_by("request_id")
        .select_for_update()
        .values_list("request_id", "pk", "latency_ms", *METRIC_COLUMNS)
    )
    rows = []
    for request_id, pk, latency_ms, *old in current:
        event = by_id[request_id]
        if event.provisional and (event.latency_ms or 0) <= (latency_ms or 0):
            continue  # an older progress update arriving late (a reclaimed batch): keep the newer
        row = event_row(event)
        row.pk = pk
        rows.append(row)
        deltas.add(EventMetrics.of_row(event_day(event), old), -1)
    if not rows:
        return
    UsageEvent.objects.bulk_update(rows, _FINAL_FIELDS)
    # Read back as stored (the database's rounding of the cost, the codec's escaping of text).
    rewritten = UsageEvent.objects.filter(
        request_id__in=[row.request_id for row in rows], pk__in=[row.pk for row in rows]
    )
    days = {row.pk: row.created_at.date() for row in rows}
    for pk, *new in rewritten.values_list("pk", *METRIC_COLUMNS):
        deltas.add(EventMetrics.of_row(days[pk], new))


# The columns an event row is inserted with (the identity column assigns the id).
_INSERT_FIELDS = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]
_INSERT_SQL = (
    f"INSERT INTO {UsageEvent._meta.db_table} ({', '.join(f.column for f in _INSERT_FIELDS)}) "
    "VALUES {values} ON CONFLICT (request_id, created_at) DO NOTHING "
    f"RETURNING request_id, {', '.join(METRIC_COLUMNS)}"
)
_INSERT_ROWS = 500  # 27 parameters a row: far under either database's limit


def _insert_new(events: list[UsageEventData], deltas: DeltaBatch) -> set[str]:
    """Insert the events whose request_id is not stored yet and journal them; returns their ids.

    Only the rows the database actually inserted come back (RETURNING skips conflicts), so a
    duplicate delivery adds no delta: bulk_create(ignore_conflicts=True) could not tell which."""
    placeholders = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(events), _INSERT_ROWS):
            chunk = events[start : start + _INSERT_ROWS]
            rows = [event_row(event) for event in chunk]
            # Keyed by the id as stored (the codec escapes what PostgreSQL cannot hold).
            by_id = {row.request_id: event for row, event in zip(rows, chunk, strict=True)}
            params = [
                f.get_db_prep_save(getattr(row, f.attname), connection)
                for row in rows
                for f in _INSERT_FIELDS
            ]
            cursor.execute(_INSERT_SQL.format(values=", ".join([placeholders] * len(rows))), params)
            for stored_id, *metrics in cursor.fetchall():
                event = by_id[stored_id]
                inserted.add(event.request_id)
                deltas.add(EventMetrics.of_row(event_day(event), metrics))
    return inserted


def _insert(events: list[UsageEventData]) -> list[UsageEventData]:
    """One transaction: the events (a request_id already present is skipped, except that a final
    entry or a later progress update replaces a stream's provisional one), the rollup deltas they
    cause (usage.deltas) and their stale marks (which schedule the fold of those deltas).
    Returns the events not stored because retention dropped their month (usage.retention).

    Skipping works through the unique (request_id, created_at): every entry of a request carries
    its start as created_at, so a duplicate delivery conflicts with the row already there."""
    events = _latest_per_request(events)
    with transaction.atomic():
        horizon = retention_horizon(share_lock=True)
        retired = [e for e in events if horizon is not None and event_time(e) < horizon]
        if retired:
            events = [e for e in events if e not in retired]
        deltas = DeltaBatch()
        inserted = _insert_new(events, deltas)
        _replace_provisional([e for e in events if e.request_id not in inserted], deltas)
        deltas.insert()
        if events:
            # Last: a recompute holds its slice's mark locked, so no write of the slice commits
            # while it reads the slice (usage.rollups).
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
