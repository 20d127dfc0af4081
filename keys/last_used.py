"""A key's last use: stamped in Redis when a request is billed, written to the database by a periodic task.

The stamp rides on the billing script (`keys.spend.BILL`), so it costs the hot path no round trip
of its own; stamps are kept per tenant so that script touches a single Redis Cluster slot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Case, DateTimeField, F, Value, When
from django.db.models.functions import Coalesce, Greatest

from keys.models import ApiKey, Tenant
from keys.spend import last_used_name
from meshplatform.redis import get_sync_redis

FLUSH_BATCH = 1000


def api_keys_flush_last_used() -> int:
    """Move the stamped times into ApiKey.last_used_at (never backwards); returns keys updated.

    Each batch is popped atomically, so two flushers never write the same stamp twice; a batch
    whose database write fails is put back for the next run.
    """
    redis = get_sync_redis()
    updated = 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True).iterator():
        name = last_used_name(tenant_id)
        while popped := redis.zpopmin(name, FLUSH_BATCH):
            stamps = {int(member): float(score) for member, score in popped}  # type: ignore[str-unpack]
            try:
                updated += _write(stamps)
            except Exception:
                redis.zadd(name, {str(k): v for k, v in stamps.items()}, gt=True)
                raise
            if len(popped) < FLUSH_BATCH:
                break
    return updated


def _write(stamps: dict[int, float]) -> int:
    when = Case(
        *(When(pk=key_id, then=Value(datetime.fromtimestamp(at, UTC))) for key_id, at in stamps.items()),
        output_field=DateTimeField(),
    )
    return ApiKey.objects.filter(pk__in=stamps).update(
        last_used_at=Greatest(Coalesce(F("last_used_at"), when), when)
    )


def api_key_last_used(api_key: ApiKey) -> datetime | None:
    """The latest use: the stamp still in Redis (seconds old) or the flushed one, whichever is later."""
    try:
        score = get_sync_redis().zscore(last_used_name(api_key.tenant_id), str(api_key.pk))
    except Exception:  # the admin page still renders while Redis is down
        score = None
    stamped = datetime.fromtimestamp(float(score), UTC) if score is not None else None
    candidates = [at for at in (stamped, api_key.last_used_at) if at is not None]
    return max(candidates) if candidates else None
