"""The Redis cache of resolved keys: the hot path reads it instead of the database.

A change to a key (revoke, rotate, suspend, limits) bumps the key's generation and drops the
entry after the transaction commits. A request that missed the cache fills it only if the
generation it saw before reading the database is still current, so a read that raced a
revocation can never put the old state back for the rest of the TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog, get_sync_redis
from meshplatform.redis_batch import redis_batched
from meshplatform.redis_scripts import RedisScript

logger = logging.getLogger(__name__)
outage = OutageLog("the API key cache")

UNKNOWN = b"unknown"
UNKNOWN_TTL_S = 60
# Outlives any database read a cache fill can race with; only a generation change matters.
GENERATION_TTL_S = 3600

# KEYS: entry, generation. ARGV: value, ttl, generation seen before the database read ('' = none).
FILL = RedisScript(
    """
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
)


def cache_key(key_hash: str) -> str:
    return f"{{mesh:key:{key_hash}}}:v2"


def generation_key(key_hash: str) -> str:
    return f"{{mesh:key:{key_hash}}}:gen"


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """A cache read: a hit (the key, or a cached "no such key") or a miss with the generation it saw."""

    key: ResolvedKey | None
    known_missing: bool
    generation: str | None  # None when Redis could not be read (then nothing is written back)
    hit: bool


async def key_cache_get(key_hash: str) -> CacheLookup:
    """One round trip for the entry and its generation; a Redis outage reads as a miss."""
    try:
        raw, generation = await redis_batched("MGET", cache_key(key_hash), generation_key(key_hash))
    except REDIS_UNAVAILABLE as error:  # fall back to the database, never fail auth
        outage.failed(error)
        return CacheLookup(key=None, known_missing=False, generation=None, hit=False)
    outage.recovered()
    seen = generation.decode() if isinstance(generation, bytes) else (generation or "")
    if raw is None:
        return CacheLookup(key=None, known_missing=False, generation=seen, hit=False)
    if raw == UNKNOWN:
        return CacheLookup(key=None, known_missing=True, generation=seen, hit=True)
    return CacheLookup(
        key=ResolvedKey.from_json(orjson.loads(raw)), known_missing=False, generation=seen, hit=True
    )


async def key_cache_fill(key_hash: str, key: ResolvedKey | None, *, generation: str) -> None:
    """Cache what the database said, unless the key changed since `generation` was read."""
    value = orjson.dumps(key.to_json()) if key is not None else UNKNOWN
    ttl = settings.MESH_KEY_CACHE_TTL_S if key is not None else UNKNOWN_TTL_S
    try:
        await FILL.run_batched([cache_key(key_hash), generation_key(key_hash)], [value, ttl, generation])
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)


def key_cache_invalidate(key_hashes: Iterable[str]) -> None:
    """Bump each key's generation and drop its entry: every worker reads the database next time."""
    hashes = list(key_hashes)
    if not hashes:
        return
    try:
        with get_sync_redis().pipeline(transaction=False) as pipe:
            for key_hash in hashes:
                pipe.incr(generation_key(key_hash))
                pipe.expire(generation_key(key_hash), GENERATION_TTL_S)
                pipe.delete(cache_key(key_hash))
            pipe.execute()
    except REDIS_UNAVAILABLE:
        # The entry expires within MESH_KEY_CACHE_TTL_S; say so loudly, this delays revocation.
        logger.exception("Could not invalidate %d cached API keys", len(hashes))
