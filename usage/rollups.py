"""Daily rollups and their two upkeep paths: folding the deltas writers journal (usage.folding, the
aggregator's usual work, cheap) and recomputing a (day, tenant) slice whole from its events (the
repair path: marks that come without deltas, an operator's request, retention before a drop).

A recompute replaces the slice's rows at two grains: with the session (UsageDailyRollup) and
without it (UsageDailyKeyRollup); in the same transaction the month's per-session sums
(UsageMonthlySessionRollup) lose the day's old session rows and gain its new ones, so they stay
the sum of the month's days. It is idempotent: running it twice gives the same rows; a worker
killed mid-run leaves every slice either committed or untouched (its stale mark stays, so the
next run redoes it). A (day, tenant) slice is one index range of usage_event (tenant_id,
created_at), so the cost grows with one tenant's day, not with the ledger; folding is what makes
the aggregator's cost independent of a day's size.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from usage.folding import (
    DELTAS,
    KEY_ROLLUPS,
    MONTH_ROLLUPS,
    ROLLUPS,
    STALE,
    StaleSlice,
    rollup_slice_fold,
    slice_deltas_fold,
    slice_locks_acquire,
)
from usage.models import UsageEvent, UsageRollupStale
from usage.retention import retention_horizon

logger = logging.getLogger(__name__)

EVENTS = UsageEvent._meta.db_table

# Errors: every event that did not end in a full answer (4xx/5xx, and 499 client disconnects).
_RECOMPUTE_SQL = f"""
INSERT INTO {ROLLUPS} (day, tenant_id, api_key_id, session_id, model, requests, errors,
                       prompt_tokens, completion_tokens, cached_tokens, cost_usd)
SELECT %(day)s, tenant_id, api_key_id, session_id, COALESCE(NULLIF(model_served, ''), model_requested),
       count(*), count(*) FILTER (WHERE http_status >= 400),
       sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cost_usd)
FROM {EVENTS}
WHERE tenant_id = %(tenant_id)s AND created_at >= %(start)s AND created_at < %(end)s
GROUP BY tenant_id, api_key_id, session_id, COALESCE(NULLIF(model_served, ''), model_requested)
"""
# The session-free grain, summed from the slice's session rows just written (fewer rows than events).
_RECOMPUTE_KEYS_SQL = f"""
INSERT INTO {KEY_ROLLUPS} (day, tenant_id, api_key_id, model, requests, errors,
                           prompt_tokens, completion_tokens, cached_tokens, cost_usd)
SELECT day, tenant_id, api_key_id, model, sum(requests), sum(errors),
       sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cost_usd)
FROM {ROLLUPS}
WHERE tenant_id = %(tenant_id)s AND day = %(day)s
GROUP BY day, tenant_id, api_key_id, model
"""

# The slice's session rows, summed per session, added to (sign 1) or taken from (sign -1) the
# month's rows. A delta, not a recompute: a month of one tenant can hold millions of sessions, a
# day's recompute must not read them. Sessions in order, so two writers of one month lock its rows
# in one order (they are also serialised by the month's advisory lock).
_MONTH_DELTA_SQL = f"""
INSERT INTO {MONTH_ROLLUPS} AS m (month, tenant_id, session_id, requests, errors, prompt_tokens,
                                  completion_tokens, cached_tokens, cost_usd)
SELECT %(month)s, tenant_id, session_id, %(sign)s * sum(requests), %(sign)s * sum(errors),
       %(sign)s * sum(prompt_tokens), %(sign)s * sum(completion_tokens), %(sign)s * sum(cached_tokens),
       %(sign)s * sum(cost_usd)
FROM {ROLLUPS}
WHERE tenant_id = %(tenant_id)s AND day = %(day)s
GROUP BY tenant_id, session_id
ORDER BY session_id
ON CONFLICT (tenant_id, month, session_id) DO UPDATE SET
    requests = m.requests + excluded.requests, errors = m.errors + excluded.errors,
    prompt_tokens = m.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = m.completion_tokens + excluded.completion_tokens,
    cached_tokens = m.cached_tokens + excluded.cached_tokens, cost_usd = m.cost_usd + excluded.cost_usd
"""
# Every event counts one request: a session's month row at zero requests has no event left.
_MONTH_EMPTIED_SQL = (
    f"DELETE FROM {MONTH_ROLLUPS} WHERE tenant_id = %(tenant_id)s AND month = %(month)s AND requests = 0"
)


# Takes the slice's mark row lock (inserting the mark if there is none): every write of events
# upserts its slices' marks last before committing (usage.store), so from here until this
# transaction ends no write of the slice commits.
_MARK_LOCK_SQL = (
    f"INSERT INTO {STALE} (day, tenant_id, generation, recompute) VALUES (%(day)s, %(tenant_id)s, 1, true) "
    "ON CONFLICT (day, tenant_id) DO UPDATE SET recompute = true"
)


def _slice_replace(cursor: CursorWrapper, params: dict[str, Any]) -> None:
    """The slice's rollups replaced by sums of its events, its deltas consumed.

    Every statement here must see the same events and deltas. Under READ COMMITTED each statement
    has its own snapshot: a write committed between the delete of the deltas and the read of the
    events would count twice (its events summed, its deltas folded later); in the other order,
    one committed between the read and the delete would be lost. So writers of the slice are
    locked out first (_MARK_LOCK_SQL; on SQLite that first write takes the database's write lock).
    A REPEATABLE READ snapshot would not do as simply: it is taken by the transaction's first
    statement, before the advisory locks are granted, so it could predate a fold that commits
    while this waits, and then read deltas that fold already moved into the rollups."""
    cursor.execute(_MARK_LOCK_SQL, params)
    cursor.execute(_MONTH_DELTA_SQL, {**params, "sign": -1})
    for table in (ROLLUPS, KEY_ROLLUPS, DELTAS):
        cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %(tenant_id)s AND day = %(day)s", params)
    cursor.execute(_RECOMPUTE_SQL, params)
    cursor.execute(_RECOMPUTE_KEYS_SQL, params)
    cursor.execute(_MONTH_DELTA_SQL, {**params, "sign": 1})
    cursor.execute(_MONTH_EMPTIED_SQL, params)


def rollup_slice_recompute(*, stale: StaleSlice) -> None:
    """Replace one (day, tenant)'s rollups with sums of its events, deltas consumed; clear its mark.

    A day before the retention horizon is never recomputed: its events were dropped with their
    month's partition and its rollups are all that is left (usage.retention); its deltas (none
    are written for such a day, but should there be) are folded, and its mark cleared.
    """
    start = datetime.combine(stale.day, time.min, tzinfo=UTC)
    params: dict[str, Any] = {
        "day": stale.day,
        "tenant_id": stale.tenant_id,
        "start": start,
        "end": start + timedelta(days=1),
        "month": stale.day.replace(day=1),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # First the retention lock (a drop of its month waits until this commits), then the slice's:
        # a drop takes them in that order too (it recomputes its month's stale slices), so the two
        # never wait on each other crosswise.
        horizon = retention_horizon(share_lock=True)
        slice_locks_acquire(cursor, tenant_id=stale.tenant_id, day=stale.day)
        if horizon is not None and start < horizon:
            logger.error(
                "rollups of %s (tenant %s) kept as they are: retention dropped the events of that day",
                stale.day,
                stale.tenant_id,
            )
            slice_deltas_fold(cursor, tenant_id=stale.tenant_id, day=stale.day)
        else:
            _slice_replace(cursor, params)
        # The mark is locked by this transaction (or no write can come: retention): no write since.
        cursor.execute(f"DELETE FROM {STALE} WHERE tenant_id = %s AND day = %s", [stale.tenant_id, stale.day])


def usage_rollups_refresh(*, limit: int | None = None) -> int:
    """Bring every stale slice up to date (oldest first): its deltas folded, or the slice recomputed
    where its mark asks for it; returns how many slices."""
    queryset = UsageRollupStale.objects.order_by("day", "tenant_id").values_list(
        "day", "tenant_id", "generation", "recompute"
    )
    slices = [StaleSlice(*row) for row in queryset[:limit]]
    for stale in slices:
        if stale.recompute:
            rollup_slice_recompute(stale=stale)
        else:
            rollup_slice_fold(stale=stale)
    return len(slices)


def usage_rollups_recompute_range(*, date_from: date, date_to: date, tenant_ids: list[int]) -> int:
    """Recompute every (day, tenant) slice of the range whole from its events (the repair path, for
    an operator: say, after events were written around the store); returns how many slices. Each
    slice in its own transaction, so the aggregator and the writers wait for one slice at a time."""
    day, slices = date_from, 0
    while day <= date_to:
        for tenant_id in tenant_ids:
            rollup_slice_recompute(stale=StaleSlice(day, tenant_id, generation=0, recompute=True))
            slices += 1
        day += timedelta(days=1)
    return slices


# Every month's per-session sums from the daily session grain, as migration 0010 backfilled them.
_MONTHS_REBUILD_SQL = f"""
INSERT INTO {MONTH_ROLLUPS} (month, tenant_id, session_id, requests, errors, prompt_tokens,
                             completion_tokens, cached_tokens, cost_usd)
SELECT {{month}}, tenant_id, session_id, sum(requests), sum(errors), sum(prompt_tokens),
       sum(completion_tokens), sum(cached_tokens), sum(cost_usd)
FROM {ROLLUPS}
GROUP BY {{month}}, tenant_id, session_id
"""
_MONTH_OF_DAY = {"postgresql": "date_trunc('month', day)::date", "sqlite": "date(day, 'start of month')"}


def session_months_rebuild() -> int:
    """Recompute the monthly session rollup whole from the daily session grain; returns its rows.

    For an operator, should the months ever disagree with their days: e.g. after a worker of a
    release before the monthly rollup recomputed days during the upgrade (it left the months
    untouched). The table is locked against the aggregator's updates meanwhile (it waits for an
    update in progress, whose days it then reads)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {MONTH_ROLLUPS} IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {MONTH_ROLLUPS}")
        cursor.execute(_MONTHS_REBUILD_SQL.format(month=_MONTH_OF_DAY[connection.vendor]))
        return int(cursor.rowcount)
