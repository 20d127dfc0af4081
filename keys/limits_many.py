"""Counting several requests at once against a key's RPM and RPD (a compare of N models is N
requests): both windows checked and counted by N in one atomic script, all or nothing."""

from __future__ import annotations

import time

from keys.limits import (
    UNLIMITED,
    AdmitReply,
    RateLimitState,
    outage,
    rate_limit_verdict,
    rate_limits_unavailable,
    window_keys,
)
from keys.types import ResolvedKey
from meshplatform.errors import RateLimited
from meshplatform.redis import REDIS_UNAVAILABLE
from meshplatform.redis_scripts import RedisScript

# KEYS: minute counter, day counter. ARGV: rpm, rpd, minute ttl, day ttl, how many requests.
# Refuses without counting anything when the N requests do not all fit in either window.
# Returns {allowed, minute count, day count, refusing window (0 none, 1 minute, 2 day)}.
FIXED_WINDOWS_MANY = RedisScript(
    """
local rpm, rpd, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local minute = tonumber(redis.call('GET', KEYS[1]) or '0')
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
if rpm > 0 and minute + n > rpm then return {0, minute, day, 1} end
if rpd > 0 and day + n > rpd then return {0, minute, day, 2} end
minute = redis.call('INCRBY', KEYS[1], n)
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
day = redis.call('INCRBY', KEYS[2], n)
if redis.call('TTL', KEYS[2]) == -1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return {1, minute, day, 0}
"""
)


async def rate_limit_count_many(*, key: ResolvedKey, key_hash: str, requests: int) -> RateLimitState:
    """Count `requests` requests of `key` at once: the x-ratelimit-* state after them, or a 429
    (nothing counted) when they do not all fit. Keys without limits cost no round trip."""
    if not key.rpm and not key.rpd:
        return UNLIMITED
    now = time.time()
    names, minute_left, day_left = window_keys(key_hash, now)
    args = [key.rpm or 0, key.rpd or 0, minute_left + 1, day_left + 1, requests]
    try:
        counted = await FIXED_WINDOWS_MANY.run_batched(names, args)
    except REDIS_UNAVAILABLE as error:
        return rate_limits_unavailable(error)
    outage.recovered()
    reply = AdmitReply(
        entry=None,
        generation="",
        counted=[int(value) for value in counted],
        minute_left=minute_left,
        day_left=day_left,
    )
    try:
        return rate_limit_verdict(key, reply)
    except RateLimited as refusal:
        if requests == 1:
            raise
        window = "minute" if reply.counted is not None and reply.counted[3] == 1 else "day"
        raise RateLimited(
            f"{requests} requests do not fit in what is left of this key's rate limit "
            f"(per {window}); a compare counts one request per model.",
            retry_after_seconds=refusal.retry_after_seconds,
            extra_headers=refusal.extra_headers,
        ) from None
