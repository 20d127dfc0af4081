"""The ledger's part of /readyz: how far behind the flusher is, and what it had to escape or set aside."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from meshplatform.redis import get_redis
from usage.recording import DEAD_LETTERS, SANITIZED_COUNT, STREAM


def _entry_age_s(entry_id: bytes | str, now: float) -> float:
    """A stream entry id is `<milliseconds>-<sequence>`: the time it was written."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return max(0.0, now - int(raw.partition("-")[0]) / 1000)


async def ledger_readiness() -> tuple[bool, dict[str, Any]]:
    """(fresh, figures): not fresh once the oldest event still in the write-ahead stream (written
    but not yet in PostgreSQL) is older than MESH_READYZ_MAX_LEDGER_LAG_S. Raises on Redis errors."""
    redis = get_redis()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(STREAM, count=1)
        pipe.xlen(STREAM)
        pipe.xlen(DEAD_LETTERS)
        pipe.get(SANITIZED_COUNT)
        oldest, unflushed, dead, sanitized = await pipe.execute()
    age = _entry_age_s(oldest[0][0], time.time()) if oldest else 0.0
    limit = settings.MESH_READYZ_MAX_LEDGER_LAG_S
    figures = {
        "oldest_unflushed_age_s": round(age, 3),
        "max_unflushed_age_s": limit,
        "unflushed_events": int(unflushed),
        "dead_letters": int(dead),
        "sanitized_events": int(sanitized or 0),
    }
    return age <= limit, figures
