"""Daily rollups: each stale (day, tenant) slice is recomputed whole from its events, in one transaction,
at two grains: with the session (UsageDailyRollup) and without it (UsageDailyKeyRollup); in the same
transaction the month's per-session sums (UsageMonthlySessionRollup) lose the day's old session rows
and gain its new ones, so they stay the sum of the month's days.

Why recompute instead of adding deltas: a replace is idempotent by construction. Running it
twice gives the same rows; a worker killed mid-run leaves every slice either committed or
untouched (its stale mark stays, so the next run redoes it); late events and events stored
twice change nothing the next recompute does not see. A (day, tenant) slice is one index
range of usage_event (tenant_id, created_at), so the cost grows with one tenant's day, not
with the ledger. A watermark over ids would be cheaper per run but wrong: ids are assigned
before commit, so a slow transaction can commit an id below a watermark already passed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction

from usage.models import (
    UsageDailyKeyRollup,
    UsageDailyRollup,
    UsageEvent,
    UsageMonthlySessionRollup,
    UsageRollupStale,
)
from usage.retention import retention_horizon

logger = logging.getLogger(__name__)

ROLLUPS = UsageDailyRollup._meta.db_table
KEY_ROLLUPS = UsageDailyKeyRollup._meta.db_table
MONTH_ROLLUPS = UsageMonthlySessionRollup._meta.db_table
EVENTS = UsageEvent._meta.db_table
STALE = UsageRollupStale._meta.db_table

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


@dataclass(frozen=True, slots=True)
class StaleSlice:
    day: date
    tenant_id: int
    generation: int


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock id for `name`."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def rollup_slice_recompute(*, stale: StaleSlice) -> None:
    """Replace one (day, tenant)'s rollups with sums of its events; clear the mark if no write came since.

    A day before the retention horizon is never recomputed: its events were dropped with their
    month's partition and its rollups are all that is left (usage.retention); its mark is cleared.
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
        if connection.vendor == "postgresql":  # SQLite (make run's embedded mode) serialises writers anyway
            # The slice: two aggregators never recompute it at once. The month: two days of one
            # tenant's month, recomputed at once, would both update its session rows.
            for name in (f"usage-rollup:{stale.tenant_id}:{stale.day}",
                         f"usage-rollup-month:{stale.tenant_id}:{params['month']}"):  # fmt: skip
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(name)])
        if horizon is not None and start < horizon:
            logger.error(
                "rollups of %s (tenant %s) kept as they are: retention dropped the events of that day",
                stale.day,
                stale.tenant_id,
            )
            cursor.execute(
                f"DELETE FROM {STALE} WHERE tenant_id = %s AND day = %s AND generation = %s",
                [stale.tenant_id, stale.day, stale.generation],
            )
            return
        cursor.execute(_MONTH_DELTA_SQL, {**params, "sign": -1})
        for table in (ROLLUPS, KEY_ROLLUPS):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %(tenant_id)s AND day = %(day)s", params)
        cursor.execute(_RECOMPUTE_SQL, params)
        cursor.execute(_RECOMPUTE_KEYS_SQL, params)
        cursor.execute(_MONTH_DELTA_SQL, {**params, "sign": 1})
        cursor.execute(_MONTH_EMPTIED_SQL, params)
        cursor.execute(
            f"DELETE FROM {STALE} WHERE tenant_id = %s AND day = %s AND generation = %s",
            [stale.tenant_id, stale.day, stale.generation],
        )


def usage_rollups_refresh(*, limit: int | None = None) -> int:
    """Recompute every stale slice (oldest first); returns how many were recomputed."""
    queryset = UsageRollupStale.objects.order_by("day", "tenant_id").values_list(
        "day", "tenant_id", "generation"
    )
    slices = [StaleSlice(day, tenant_id, generation) for day, tenant_id, generation in queryset[:limit]]
    for stale in slices:
        rollup_slice_recompute(stale=stale)
    return len(slices)


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
