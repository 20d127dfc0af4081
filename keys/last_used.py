"""A key's last use: stamped in Redis on every request, written to the database by a periodic task."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db.models import Case, DateTimeField, F, Value, When
from django.db.models.functions import Coalesce, Greatest

from keys.models import ApiKey
from meshplatform.redis import get_sync_redis

logger = logging.getLogger(__name__)

LAST_USED_KEY = "mesh:keys:last_used"
FLUSH_BATCH = 1000


def last_used_stamp(pipe: Any, *, key_id: int, now: float) -> None:
    """Queue the stamp on a pipeline the hot path sends anyway (no round trip of its own)."""
    pipe.zadd(LAST_USED_KEY, {str(key_id): now}, gt=True)


def api_keys_flush_last_used() -> int:
    """Move the stamped times into ApiKey.last_used_at (never backwards); returns keys updated.

    Each batch is popped atomically, so two flushers never write the same stamp twice; a batch
    whose database write fails is put back for the next run.
    """
    redis = get_sync_redis()
    updated = 0
    while True:
        popped = redis.zpopmin(LAST_USED_KEY, FLUSH_BATCH)
        if not popped:
            return updated
        stamps = {int(member): float(score) for member, score in popped}
        try:
            updated += _write(stamps)
        except Exception:
            redis.zadd(LAST_USED_KEY, {str(k): v for k, v in stamps.items()}, gt=True)
            raise
        if len(popped) < FLUSH_BATCH:
            return updated


def _write(stamps: dict[int, float]) -> int:
    when = Case(
        *(When(pk=key_id, then=Value(datetime.fromtimestamp(at, UTC))) for key_id, at in stamps.items()),
        output_field=DateTimeField(),
    )
    return ApiKey.objects.filter(pk__in=stamps).update(
        last_used_at=Greatest(Coalesce(F("last_used_at"), when), when)
    )
