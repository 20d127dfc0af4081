"""Per-key RPM and RPD: Redis fixed windows, both checked and counted in one atomic Lua script."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.errors import RateLimited
from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog
from meshplatform.redis_scripts import RedisScript

logger = logging.getLogger(__name__)
outage = OutageLog("rate limits")

# The fixed windows, once: refuses without counting when either window is full, otherwise counts
# both. Both counters share a hash tag (one slot on Redis Cluster); 0 means unlimited.
# Returns {allowed, minute count, day count, refusing window (0 none, 1 minute, 2 day)}.
_COUNT_LUA = """
local function count(minute_key, day_key, rpm, rpd, minute_ttl, day_ttl)
  local minute = tonumber(redis.call('GET', minute_key) or '0')
  local day = tonumber(redis.call('GET', day_key) or '0')
  if rpm > 0 and minute >= rpm then return {0, minute, day, 1} end
  if rpd > 0 and day >= rpd then return {0, minute, day, 2} end
  minute = redis.call('INCR', minute_key)
  if minute == 1 then redis.call('EXPIRE', minute_key, minute_ttl) end
  day = redis.call('INCR', day_key)
  if day == 1 then redis.call('EXPIRE', day_key, day_ttl) end
  return {1, minute, day, 0}
end
"""

# KEYS: minute counter, day counter. ARGV: rpm, rpd, minute ttl, day ttl.
FIXED_WINDOWS = RedisScript(
    _COUNT_LUA + "return count(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4])\n"
)


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """What the x-ratelimit-* response headers report (about the tighter window)."""

    limit: int | None
    remaining: int | None
    reset_seconds: int | None

    def headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(max(self.remaining or 0, 0)),
            "x-ratelimit-reset-requests": f"{self.reset_seconds}s",
        }


UNLIMITED = RateLimitState(limit=None, remaining=None, reset_seconds=None)


def window_keys(key_hash: str, now: float) -> tuple[list[str], int, int]:
    """Redis keys for the current minute and UTC day, and the seconds left in each.

    They share the key cache entry's hash tag, so one script can read the entry and count.
    """
    minute_window = int(now // 60)
    day_window = int(now // 86400)
    tag = f"{{mesh:key:{key_hash}}}"
    names = [f"{tag}:m:{minute_window}", f"{tag}:d:{day_window}"]
    return names, 60 - int(now % 60), 86400 - int(now % 86400)


# KEYS: cache entry, cache generation, minute counter, day counter (one hash tag).
# ARGV: minute ttl, day ttl. The key's cached record carries its rpm/rpd, so the hot path
# authenticates and counts in one round trip. A miss or a cached "no such key" counts nothing.
# Returns {entry or false, generation, [allowed, minute count, day count, refusing window]}.
ADMIT = RedisScript(
    _COUNT_LUA
    + """
local entry = redis.call('GET', KEYS[1])
local generation = redis.call('GET', KEYS[2]) or ''
if not entry or entry == 'unknown' then return {entry, generation} end
local key = cjson.decode(entry)
local rpm = tonumber(key['rpm']) or 0
local rpd = tonumber(key['rpd']) or 0
if rpm == 0 and rpd == 0 then return {entry, generation} end
local counted = count(KEYS[3], KEYS[4], rpm, rpd, ARGV[1], ARGV[2])
return {entry, generation, counted[1], counted[2], counted[3], counted[4]}
"""
)


@dataclass(frozen=True, slots=True)
class AdmitReply:
    """The ADMIT script's answer: the cached entry (None on a miss) and, for limited keys, the count."""

    entry: bytes | None
    generation: str
    counted: list[int] | None
    minute_left: int
    day_left: int


async def admit_run(*, key_hash: str, cache_names: list[str], now: float) -> AdmitReply:
    """Read the cached key and count it against its windows in one round trip (raises on Redis errors)."""
    names, minute_left, day_left = window_keys(key_hash, now)
    reply = await ADMIT.run_batched([*cache_names, *names], [minute_left + 1, day_left + 1])
    entry, generation = reply[0] or None, reply[1]
    counted = [int(value) for value in reply[2:]] if len(reply) > 2 else None
    outage.recovered()
    return AdmitReply(
        entry=entry,
        generation=generation.decode() if isinstance(generation, bytes) else str(generation),
        counted=counted,
        minute_left=minute_left,
        day_left=day_left,
    )


def rate_limit_verdict(key: ResolvedKey, reply: AdmitReply) -> RateLimitState:
    """The x-ratelimit-* state of a counted request, or the 429 for a refused one."""
    if reply.counted is None:
        return UNLIMITED
    allowed, minute, day, refused_by = reply.counted
    state = _state(key, minute, day, reply.minute_left, reply.day_left)
    if not allowed:
        window, retry_after = ("minute", reply.minute_left) if refused_by == 1 else ("day", reply.day_left)
        limit = key.rpm if refused_by == 1 else key.rpd
        raise RateLimited(
            f"Rate limit of {limit} requests per {window} reached for this key.",
            retry_after_seconds=retry_after,
            extra_headers=state.headers(),
        )
    return state


async def rate_limit_check(*, key: ResolvedKey, key_hash: str) -> RateLimitState:
    """Count a request whose key was not in the cache (the ADMIT script counts cached ones).

    Keys without limits cost no round trip.
    """
    if not key.rpm and not key.rpd:
        return UNLIMITED
    now = time.time()
    names, minute_left, day_left = window_keys(key_hash, now)
    args = [key.rpm or 0, key.rpd or 0, minute_left + 1, day_left + 1]
    try:
        counted = await FIXED_WINDOWS.run_batched(names, args)
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
    return rate_limit_verdict(key, reply)


def rate_limits_unavailable(error: Exception) -> RateLimitState:
    """Redis is down: serve without limits (default) or refuse, per MESH_LIMITS_FAIL_OPEN."""
    outage.failed(error)
    if settings.MESH_LIMITS_FAIL_OPEN:
        return UNLIMITED
    raise RateLimited("Rate limits are unavailable; try again shortly.", retry_after_seconds=1) from None


def _state(key: ResolvedKey, minute: int, day: int, minute_left: int, day_left: int) -> RateLimitState:
    candidates = []
    if key.rpm:
        candidates.append((key.rpm - minute, key.rpm, minute_left))
    if key.rpd:
        candidates.append((key.rpd - day, key.rpd, day_left))
    remaining, limit, reset = min(candidates)
    return RateLimitState(limit=limit, remaining=remaining, reset_seconds=reset)
