"""The ledger's retention horizon: the end of the latest month whose partition retention dropped.

Read by the writers of events (usage.store) and of rollups (usage.rollups), kept apart from
usage.partitions so both can import it. Storing an event dated before the horizon would put it
alone in a month whose other events are gone, and the next recompute of its day would replace
the rollups (the only record left of that day) with that one event's sums: so such an event is
set aside instead (dead letters, as for any event the database refuses), and such a day's
rollups are never recomputed.

A drop holds RETENTION_LOCK exclusively from before it reads the month's events until it
commits; every store holds it shared from before it reads the horizon until it commits. So a
store either commits before the drop reads the month (the drop then sees its event), or reads
the horizon the drop wrote.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from usage.models import LedgerPartitionDrop

RETENTION_LOCK = 0x6D657368_6C656467  # "meshledg": an advisory lock id of its own

_HORIZON_SQL = f"SELECT max(range_end) FROM {LedgerPartitionDrop._meta.db_table}"


def retention_horizon(*, share_lock: bool = False) -> datetime | None:
    """No event dated before this is kept; None while retention has dropped nothing. With
    `share_lock` (PostgreSQL, inside a transaction), held against a concurrent drop until commit."""
    with connection.cursor() as cursor:
        if share_lock and connection.vendor == "postgresql":
            cursor.execute(f"SELECT pg_advisory_xact_lock_shared(%s), ({_HORIZON_SQL})", [RETENTION_LOCK])
            row = cursor.fetchone()
            return None if row is None else row[1]
        cursor.execute(_HORIZON_SQL)
        row = cursor.fetchone()
        return None if row is None else row[0]
