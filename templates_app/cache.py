"""The Redis cache of resolved template references: (tenant, ref) → version, one hash per tenant.

Layout of hash `mesh:tpl:{<tenant id>}`:
- `r:<ref>` → the version UUID the reference resolves to, or `-` for "no such template";
- `v:<version UUID>` → that version's payload (JSON), read only by a process that has not yet
  compiled the version, so a hit moves 36 bytes, not the whole template;
- `~gen`, bumped by every invalidation. A reader that missed fills the hash only if `~gen` is
  still what it saw, so a fill racing with a change never stores the old version.
Any change to any of a tenant's templates drops the whole hash: edits are rare, and a
reference (a name, `name@3`) may change meaning with a rename or delete.
"""

from __future__ import annotations

import logging
from typing import cast

import orjson

from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog, get_sync_redis
from meshplatform.redis_batch import redis_batched
from templates_app.types import VersionPayload

logger = logging.getLogger(__name__)
outage = OutageLog("the template cache")

# A safety net only: invalidation on commit is what keeps entries fresh.
CACHE_TTL_S = 300
NOT_FOUND = b"-"
GEN_FIELD = "~gen"
REDIS_DOWN = b"!"

_FILL = """
if (redis.call('HGET', KEYS[1], '~gen') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[4], ARGV[5]) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return 1
"""

_INVALIDATE = """
local gen = tonumber(redis.call('HGET', KEYS[1], '~gen') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '~gen', gen)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return gen
"""


def cache_key(tenant_id: int) -> str:
    return f"mesh:tpl:{{{tenant_id}}}"


async def template_cache_get(tenant_id: int, ref: str) -> tuple[bytes | None, bytes]:
    """(version UUID, NOT_FOUND or None on a miss; the generation to fill with)."""
    try:
        version_id, gen = await redis_batched("HMGET", cache_key(tenant_id), f"r:{ref}", GEN_FIELD)
    except REDIS_UNAVAILABLE as error:  # the database answers instead
        outage.failed(error)
        return None, REDIS_DOWN
    outage.recovered()
    return cast(bytes | None, version_id), cast(bytes, gen or b"")


async def template_cache_payload(tenant_id: int, version_id: bytes) -> VersionPayload | None:
    try:
        raw = await redis_batched("HGET", cache_key(tenant_id), b"v:" + version_id)
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
        return None
    return VersionPayload.from_json(orjson.loads(raw)) if raw is not None else None


async def template_cache_fill(tenant_id: int, ref: str, gen: bytes, payload: VersionPayload | None) -> None:
    if gen == REDIS_DOWN:
        return
    version_field, version_json = b"", b""
    if payload is not None:
        version_field, version_json = f"v:{payload.version_id}".encode(), orjson.dumps(payload.to_json())
    resolved = payload.version_id.encode() if payload is not None else NOT_FOUND
    try:
        await redis_batched(
            "EVAL",
            _FILL,
            1,
            cache_key(tenant_id),
            gen,
            f"r:{ref}",
            resolved,
            version_field,
            version_json,
            CACHE_TTL_S,
        )
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)


def template_cache_invalidate(tenant_id: int) -> None:
    """Forget every cached reference of the tenant (call on commit of any template change)."""
    try:
        get_sync_redis().eval(_INVALIDATE, 1, cache_key(tenant_id), CACHE_TTL_S)
    except REDIS_UNAVAILABLE:
        # Entries expire within CACHE_TTL_S; say so loudly, this delays the change.
        logger.exception("Could not invalidate the template cache of tenant %s", tenant_id)
