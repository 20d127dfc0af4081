"""The ledger's monthly partitions (PostgreSQL): created ahead, and dropped whole by retention.

usage_usageevent is partitioned by range of created_at, one partition per UTC month
(usage_usageevent_pYYYY_MM, migration 0010), plus a DEFAULT partition. Beat creates the current
month's and the next MESH_LEDGER_PARTITIONS_AHEAD months' partitions ahead of time
(`ledger_partitions_ensure`); an event whose month has none yet (beat stopped for months, a
clock far off) lands in the DEFAULT partition rather than being refused, and the next ensure
moves such rows into a partition of their month (`_carve`): a partition cannot be created over
rows the default already holds for its range. A DEFAULT partition rather than creating
partitions on demand in the write path: the flusher's insert then never waits on DDL, and no
event can fail for want of a partition.

Retention (`ledger_partitions_drop_expired`, MESH_LEDGER_RETENTION_MONTHS; 0 keeps everything)
detaches and drops a month's partition once MESH_LEDGER_RETENTION_MONTHS whole months have passed
since it ended: no DELETE, no bloat, no vacuum debt. The month's rollups stay (reports read them):
before dropping, the month's stale slices (and any holding rollup deltas) are recomputed from its
events, their deltas consumed, and afterwards no
event dated before the horizon is stored and no day before it recomputed (usage.retention).
Each drop is recorded (LedgerPartitionDrop: rows, cost) and in the audit log.

Detaching takes an ACCESS EXCLUSIVE lock on the ledger for an instant (DETACH … CONCURRENTLY is
refused while a DEFAULT partition exists); under MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S so a long
report query makes the drop give up until the next run instead of queueing every write behind it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper

from keys.audit import audit_record
from usage.folding import StaleSlice
from usage.models import LedgerPartitionDrop, UsageEvent, UsageRollupDelta, UsageRollupStale
from usage.retention import RETENTION_LOCK
from usage.rollups import rollup_slice_recompute

logger = logging.getLogger(__name__)

PARENT = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{PARENT}_default"

_BOUNDS_SQL = r"""
SELECT c.relname,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
ORDER BY 2 NULLS LAST
"""


@dataclass(frozen=True, slots=True)
class LedgerPartition:
    """One partition of the ledger; the DEFAULT one has no bounds."""

    name: str
    start: datetime | None
    end: datetime | None


def month_start(at: datetime) -> datetime:
    """The first instant of `at`'s UTC month."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def month_add(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y_%m}"


def ledger_partitioned() -> bool:
    """Whether the ledger is a partitioned table (PostgreSQL past migration 0010; not SQLite)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = %s::regclass", [PARENT])
        row = cursor.fetchone()
    return bool(row and row[0])


def ledger_partitions() -> list[LedgerPartition]:
    """Every partition, oldest first, the DEFAULT one last."""
    if not ledger_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(_BOUNDS_SQL, [PARENT])
        return [LedgerPartition(name, start, end) for name, start, end in cursor.fetchall()]


def _lock_timeout(cursor: CursorWrapper) -> None:
    timeout_ms = int(settings.MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S * 1000)
    cursor.execute(f"SET LOCAL lock_timeout = {timeout_ms}")


def _lock_timed_out(error: OperationalError, what: str) -> bool:
    """Whether `error` is MESH_LEDGER_PARTITION_LOCK_TIMEOUT_S running out (logged: the next run
    tries again); anything else is for the caller."""
    if not isinstance(error.__cause__, psycopg.errors.LockNotAvailable):
        return False
    logger.warning("%s: the ledger stayed locked (a long query?); next run tries again", what)
    return True


def _default_months(cursor: CursorWrapper) -> set[datetime]:
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {DEFAULT_PARTITION}"
    )
    return {month.replace(tzinfo=UTC) for (month,) in cursor.fetchall()}


def _partition_create(start: datetime) -> str:
    """The partition of the month from `start`, with the rows the DEFAULT partition holds for it.

    Under RETENTION_LOCK, so no event is stored meanwhile: none can land in the default between
    the check and the creation. Rows found there are moved (the one DELETE here, from the default
    partition only, of rows copied in the same transaction); normally there are none."""
    name, end = partition_name(start), month_add(start, 1)
    bounds = [start, end]
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_timeout(cursor)
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RETENTION_LOCK])
        in_range = f"FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s"
        cursor.execute(f"SELECT count(*) {in_range}", bounds)
        (stranded,) = cursor.fetchone() or (0,)
        if not stranded:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM (%s) TO (%s)", bounds)
            return name
        cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(f"INSERT INTO {name} SELECT * {in_range}", bounds)
        cursor.execute(f"DELETE {in_range}", bounds)
        cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", bounds)
    logger.warning("ledger partition %s created with %d events moved from the default one", name, stranded)
    return name


def ledger_partitions_ensure(*, now: datetime | None = None, ahead: int | None = None) -> list[str]:
    """Create the partitions of the current month and the `ahead` next ones (default
    MESH_LEDGER_PARTITIONS_AHEAD), and of any month whose events wait in the DEFAULT partition;
    returns the names created. Running it twice creates nothing the second time."""
    if not ledger_partitioned():
        return []
    current = month_start(now or datetime.now(UTC))
    ahead = settings.MESH_LEDGER_PARTITIONS_AHEAD if ahead is None else ahead
    wanted = {month_add(current, n) for n in range(ahead + 1)}
    with connection.cursor() as cursor:
        wanted |= _default_months(cursor)
    existing = {partition.start for partition in ledger_partitions()}
    created = []
    for start in sorted(wanted - existing):
        try:
            created.append(_partition_create(start))
        except OperationalError as error:
            if not _lock_timed_out(error, f"creating {partition_name(start)}"):
                raise
    if created:
        logger.info("ledger partitions created: %s", ", ".join(created))
    return created


@dataclass(frozen=True, slots=True)
class PartitionDropped:
    name: str
    start: datetime
    end: datetime
    events: int
    cost_usd: Decimal


def retention_cutoff(*, now: datetime, months: int) -> datetime:
    """A partition ending at or before this is dropped: `months` whole months have passed since."""
    return month_add(month_start(now), -months)


def _slices_behind(start: datetime, end: datetime) -> list[StaleSlice]:
    """The month's slices whose rollups lag their events: marked stale, or holding deltas not yet
    folded (every delta comes with a mark, but a fold of the deltas of a month about to lose its
    events must not depend on it). Recomputed, not folded: exact whatever the mark says."""
    in_month = {"day__gte": start.date(), "day__lt": end.date()}
    slices = set(UsageRollupStale.objects.filter(**in_month).values_list("day", "tenant_id"))
    slices |= set(UsageRollupDelta.objects.filter(**in_month).values_list("day", "tenant_id").distinct())
    return [StaleSlice(day, tenant_id, generation=0, recompute=True) for day, tenant_id in sorted(slices)]


def _partition_drop(partition: LedgerPartition, months: int) -> PartitionDropped:
    assert partition.start is not None and partition.end is not None
    start, end = partition.start, partition.end
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_timeout(cursor)
        # From here no event is stored and no rollup recomputed until this commits (usage.retention).
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RETENTION_LOCK])
        # Rollups brought up to date from the events while they exist: they are all that will remain.
        for stale in _slices_behind(start, end):
            rollup_slice_recompute(stale=stale)
        cursor.execute(f"SELECT count(*), COALESCE(sum(cost_usd), 0) FROM {partition.name}")
        events, cost = cursor.fetchone() or (0, Decimal(0))
        drop = LedgerPartitionDrop.objects.create(
            partition=partition.name,
            range_start=start,
            range_end=end,
            events=events,
            cost_usd=cost,
            retention_months=months,
        )
        audit_record(
            action="ledger.partition_drop",
            target=drop,
            tenant_id=None,
            after={
                "partition": partition.name,
                "range_start": start,
                "range_end": end,
                "events": events,
                "cost_usd": cost,
                "retention_months": months,
            },
        )
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {partition.name}")
        cursor.execute(f"DROP TABLE {partition.name}")
    logger.warning(
        "ledger partition %s dropped by retention (%d months): %d events, %s USD; their rollups kept",
        partition.name,
        months,
        events,
        cost,
    )
    return PartitionDropped(partition.name, start, end, events, cost)


def ledger_partitions_drop_expired(
    *, now: datetime | None = None, months: int | None = None
) -> list[PartitionDropped]:
    """Detach and drop every partition that ended `months` (default MESH_LEDGER_RETENTION_MONTHS)
    whole months ago or more, oldest first; 0 keeps everything. Events of such months still in
    the DEFAULT partition are first given their month's partition, so they go too."""
    months = settings.MESH_LEDGER_RETENTION_MONTHS if months is None else months
    if months <= 0 or not ledger_partitioned():
        return []
    cutoff = retention_cutoff(now=now or datetime.now(UTC), months=months)
    with connection.cursor() as cursor:
        stranded = {month for month in _default_months(cursor) if month < cutoff}
    existing = {partition.start for partition in ledger_partitions()}
    for start in sorted(stranded - existing):
        try:
            _partition_create(start)
        except OperationalError as error:
            if not _lock_timed_out(error, f"creating {partition_name(start)}"):
                raise
    dropped = []
    for partition in [p for p in ledger_partitions() if p.end is not None and p.end <= cutoff]:
        try:
            dropped.append(_partition_drop(partition, months))
        except OperationalError as error:
            if not _lock_timed_out(error, f"dropping {partition.name}"):
                raise
    return dropped
