"""The Redis cache of resolved keys: the hot path reads it instead of the database."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.redis import OutageLog, get_redis, get_sync_redis

logger = logging.getLogger(__name__)
outage = OutageLog("the API key cache")

UNKNOWN = b"unknown"
UNKNOWN_TTL_S = 60


def cache_key(key_hash: str) -> str:
    return f"mesh:key:{key_hash}"


async def key_cache_get(key_hash: str) -> ResolvedKey | None | bool:
    """The cached key, False for a cached "no such key", None on a miss or Redis outage."""
    try:
        raw = await get_redis().get(cache_key(key_hash))
    except Exception as error:  # Redis down: fall back to the database, never fail auth
        outage.failed(error)
        return None
    outage.recovered()
    if raw is None:
        return None
    if raw == UNKNOWN:
        return False
    return ResolvedKey.from_json(orjson.loads(raw))


async def key_cache_set(key_hash: str, key: ResolvedKey | None) -> None:
    value = orjson.dumps(key.to_json()) if key is not None else UNKNOWN
    ttl = settings.MESH_KEY_CACHE_TTL_S if key is not None else UNKNOWN_TTL_S
    try:
        await get_redis().set(cache_key(key_hash), value, ex=ttl)
    except Exception as error:
        outage.failed(error)


def key_cache_invalidate(key_hashes: Iterable[str]) -> None:
    """Drop cached entries so a change (revoke, suspend, limits) applies on the next request."""
    names = [cache_key(h) for h in key_hashes]
    if not names:
        return
    try:
        get_sync_redis().delete(*names)
    except Exception:
        # The entry expires within MESH_KEY_CACHE_TTL_S; say so loudly, this delays revocation.
        logger.exception("Could not invalidate %d cached API keys", len(names))
