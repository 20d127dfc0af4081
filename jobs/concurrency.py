"""Bounded concurrency per tenant across every worker: a Redis semaphore of leased slots.

Each running batch line holds one slot (a member of the tenant's sorted set, scored by its
lease's end); a slot whose worker died is reclaimed once its lease ends.
"""

from __future__ import annotations

import asyncio
import time

from meshplatform.redis import get_redis
from meshplatform.redis_scripts import RedisScript

# KEYS: the tenant's slots zset. ARGV: member, now, lease end, limit. 1 when the slot is taken.
ACQUIRE = RedisScript(
    """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) - tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""
)


def slots_name(tenant_id: int) -> str:
    return f"{{mesh:batch:{tenant_id}}}:slots"


async def slot_acquire(*, tenant_id: int, member: str, limit: int, lease_s: float) -> None:
    """Wait until one of the tenant's `limit` slots is free and take it for `member`."""
    delay = 0.02
    while True:
        now = time.time()
        taken = await ACQUIRE.run(get_redis(), [slots_name(tenant_id)], [member, now, now + lease_s, limit])
        if int(taken):
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def slot_release(*, tenant_id: int, member: str) -> None:
    await get_redis().zrem(slots_name(tenant_id), member)
