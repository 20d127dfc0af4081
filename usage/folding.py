"""Folding a (day, tenant) slice's rollup deltas (usage.deltas) into its rollups, at every grain, in
one transaction: the cost of a fold is its deltas (the writes since the last fold), not the day.

Why it is exact at every instant: a write commits its events and their deltas together (usage.store),
and a fold deletes the deltas it adds to the rollups in the same transaction, so any snapshot sees
an event either in the deltas or in the rollups, never both, never neither. The three grains must
add the same deltas: on PostgreSQL one statement deletes them (`DELETE … RETURNING` in a CTE, run
exactly once) and the three upserts read that one result, so a delta committed mid-fold (after the
statement's snapshot) is neither deleted nor added, and waits for the next fold. On SQLite (make
run's embedded mode, no data-modifying CTEs) the first upsert takes the database's write lock, so
no delta is committed until the fold's delete has run and committed with it.

Folds and recomputes of a slice never interleave: both hold the slice's advisory lock, then its
month's (two days of one month update the same month rows), in that order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from usage.models import (
    UsageDailyKeyRollup,
    UsageDailyRollup,
    UsageMonthlySessionRollup,
    UsageRollupDelta,
    UsageRollupStale,
)

ROLLUPS = UsageDailyRollup._meta.db_table
KEY_ROLLUPS = UsageDailyKeyRollup._meta.db_table
MONTH_ROLLUPS = UsageMonthlySessionRollup._meta.db_table
DELTAS = UsageRollupDelta._meta.db_table
STALE = UsageRollupStale._meta.db_table

_SUMS = (
    "sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
    "sum(cost_usd)"
)
_ADD = """requests = r.requests + excluded.requests, errors = r.errors + excluded.errors,
    prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = r.completion_tokens + excluded.completion_tokens,
    cached_tokens = r.cached_tokens + excluded.cached_tokens, cost_usd = r.cost_usd + excluded.cost_usd"""
_METRICS = "requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd"


@dataclass(frozen=True, slots=True)
class StaleSlice:
    """A (day, tenant) marked stale: `generation` as read, `recompute` if its mark asks for one."""

    day: date
    tenant_id: int
    generation: int
    recompute: bool = False


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock id for `name`."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def slice_locks_acquire(cursor: CursorWrapper, *, tenant_id: int, day: date) -> None:
    """The slice's and its month's advisory locks, until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway)."""
    if connection.vendor != "postgresql":
        return
    for name in (f"usage-rollup:{tenant_id}:{day}", f"usage-rollup-month:{tenant_id}:{day.replace(day=1)}"):
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(name)])


def _upserts(source: str) -> tuple[str, str, str]:
    """The three grains' upserts of the deltas in `source`, each returning (id, requests) of the
    rows it wrote: a row at zero requests has no event left and is deleted after. Groups in index
    order, so two folds lock shared month rows in one order (they also hold the month's lock)."""
    daily = f"""INSERT INTO {ROLLUPS} AS r (day, tenant_id, api_key_id, session_id, model, {_METRICS})
    SELECT day, tenant_id, api_key_id, session_id, model, {_SUMS} FROM {source}
    GROUP BY day, tenant_id, api_key_id, session_id, model ORDER BY api_key_id, session_id, model
    ON CONFLICT (tenant_id, day, api_key_id, session_id, model) DO UPDATE SET {_ADD}"""
    keys = f"""INSERT INTO {KEY_ROLLUPS} AS r (day, tenant_id, api_key_id, model, {_METRICS})
    SELECT day, tenant_id, api_key_id, model, {_SUMS} FROM {source}
    GROUP BY day, tenant_id, api_key_id, model ORDER BY api_key_id, model
    ON CONFLICT (tenant_id, day, api_key_id, model) DO UPDATE SET {_ADD}"""
    months = f"""INSERT INTO {MONTH_ROLLUPS} AS r (month, tenant_id, session_id, {_METRICS})
    SELECT %(month)s, tenant_id, session_id, {_SUMS} FROM {source}
    GROUP BY tenant_id, session_id ORDER BY session_id
    ON CONFLICT (tenant_id, month, session_id) DO UPDATE SET {_ADD}"""
    return daily, keys, months


_SLICE = "tenant_id = %(tenant_id)s AND day = %(day)s"
_GRAINS = (ROLLUPS, KEY_ROLLUPS, MONTH_ROLLUPS)
_PG_DAILY, _PG_KEYS, _PG_MONTHS = _upserts("d")
# One statement: the deltas deleted once, every grain fed from that one set (see the module docstring).
_PG_FOLD_SQL = f"""
WITH d AS (DELETE FROM {DELTAS} WHERE {_SLICE}
           RETURNING day, tenant_id, api_key_id, session_id, model, {_METRICS}),
s AS ({_PG_DAILY} RETURNING r.id, r.requests),
k AS ({_PG_KEYS} RETURNING r.id, r.requests),
m AS ({_PG_MONTHS} RETURNING r.id, r.requests)
SELECT 0, id FROM s WHERE requests = 0
UNION ALL SELECT 1, id FROM k WHERE requests = 0
UNION ALL SELECT 2, id FROM m WHERE requests = 0
"""
# SQLite reads the table itself; `WHERE` before GROUP BY also keeps its parser from taking the
# upsert's ON for a join's.
_SQLITE_UPSERTS = _upserts(f"(SELECT * FROM {DELTAS} WHERE {_SLICE}) AS d")


def _fold_statements(cursor: CursorWrapper, params: dict[str, Any]) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(_PG_FOLD_SQL, params)
        emptied: dict[int, list[int]] = {}
        for grain, row_id in cursor.fetchall():
            emptied.setdefault(grain, []).append(row_id)
        for grain, ids in emptied.items():
            cursor.execute(f"DELETE FROM {_GRAINS[grain]} WHERE id = ANY(%s) AND requests = 0", [ids])
        return
    for upsert in _SQLITE_UPSERTS:
        cursor.execute(upsert, params)
    cursor.execute(f"DELETE FROM {DELTAS} WHERE {_SLICE}", params)
    for table in (ROLLUPS, KEY_ROLLUPS):
        cursor.execute(f"DELETE FROM {table} WHERE {_SLICE} AND requests = 0", params)
    cursor.execute(
        f"DELETE FROM {MONTH_ROLLUPS} WHERE tenant_id = %(tenant_id)s AND month = %(month)s AND requests = 0",
        params,
    )


def slice_deltas_fold(cursor: CursorWrapper, *, tenant_id: int, day: date) -> None:
    """Fold the slice's committed deltas into its rollups; for a caller already holding the
    slice's locks in its transaction (a recompute refused by retention folds this way)."""
    _fold_statements(cursor, {"tenant_id": tenant_id, "day": day, "month": day.replace(day=1)})


def rollup_slice_fold(*, stale: StaleSlice) -> None:
    """Add the slice's deltas to its rollups and clear its mark, unless a write came since it was
    read (the generation moved: those deltas wait for the next fold) or a recompute was asked."""
    with transaction.atomic(), connection.cursor() as cursor:
        slice_locks_acquire(cursor, tenant_id=stale.tenant_id, day=stale.day)
        slice_deltas_fold(cursor, tenant_id=stale.tenant_id, day=stale.day)
        cursor.execute(
            f"DELETE FROM {STALE} WHERE tenant_id = %s AND day = %s AND generation = %s AND NOT recompute",
            [stale.tenant_id, stale.day, stale.generation],
        )
