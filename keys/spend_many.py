"""Holding several requests' costs at once (a compare's runs, one per model): all of them fit
under every cap of the key and tenant, or none is held and the 402 refuses them as a whole.

Each request still gets its own hold under its own request id, exactly as `spend_reserve` writes
it, so its billing (`spend_add`), its stream's progress and the expiry of a dead worker's hold
treat it as any other request's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from keys.spend import (
    _RELEASE_LUA,
    PERIOD_TTL_S,
    RELEASE,
    SpendHold,
    _refusal,
    _unverifiable,
    holds_names,
    in_flight_name,
    outage,
    spend_counters,
    to_nano_usd,
)
from keys.types import ResolvedKey
from meshplatform.redis import REDIS_UNAVAILABLE
from meshplatform.redis_scripts import RedisScript

# KEYS: holds hash, hold deadlines zset, then per capped counter: the counter, its in-flight counter.
# ARGV: m (requests), deadline, now, m request ids, then per counter: cap, ttl, hard (1/0), and
# m amounts. A hard counter refuses when the sum of the amounts does not fit under its cap; a soft
# one once spend + in flight >= cap. Returns {1} when every request is held, {0, index of the
# refusing counter, its spend} when none is.
RESERVE_MANY = RedisScript(
    _RELEASE_LUA
    + """
local m = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  local held = redis.call('HGET', KEYS[1], id)
  if held then release(held) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local counters = (#KEYS - 2) / 2
local function base(i) return 3 + m + (i - 1) * (3 + m) end
for i = 1, counters do
  local b = base(i)
  local spent = tonumber(redis.call('GET', KEYS[1 + 2 * i]) or '0')
  local cap, hard = tonumber(ARGV[b + 1]), ARGV[b + 3] == '1'
  if hard then
    local total = 0
    for r = 1, m do total = total + tonumber(ARGV[b + 3 + r]) end
    if spent + total > cap then return {0, i, spent} end
  else
    local in_flight = tonumber(redis.call('GET', KEYS[2 + 2 * i]) or '0')
    if spent + in_flight >= cap then return {0, i, spent} end
  end
end
for r = 1, m do
  local held = ''
  for i = 1, counters do
    local b = base(i)
    local target = KEYS[1 + 2 * i]
    if ARGV[b + 3] ~= '1' then target = KEYS[2 + 2 * i] end
    add(target, ARGV[b + 3 + r], ARGV[b + 2])
    held = held .. ARGV[b + 3 + r] .. ' ' .. target .. ' '
  end
  redis.call('HSET', KEYS[1], ARGV[3 + r], held)
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3 + r])
end
return {1, 0, 0}
"""
)


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """One request of the group: what it would hold on its own (see `spend_reserve`)."""

    request_id: str
    worst_case_usd: Decimal
    expected_usd: Decimal


async def spend_reserve_many(
    *, key: ResolvedKey, requests: list[HoldRequest], at: float, hold_s: float
) -> dict[str, SpendHold]:
    """Hold every request's cost, each under its own request id, or 402 for the group: the sum of
    the worst cases against hard caps, the expected costs (as in flight) against soft ones.
    Returns the holds by request id (empty when the key and tenant have no cap)."""
    when = datetime.fromtimestamp(at, UTC)
    counters = [c for c in spend_counters(key, when) if c.cap is not None]
    if not counters or not requests:
        return {}
    holds = {
        r.request_id: SpendHold(request_id=r.request_id, tenant_id=key.tenant_id, hold_s=hold_s)
        for r in requests
    }
    deadline = next(iter(holds.values())).deadline()
    names = holds_names(key.tenant_id)
    args: list[str | int | float] = [len(requests), deadline, time.time(), *(r.request_id for r in requests)]
    for counter in counters:
        assert counter.cap is not None
        names += [counter.name, in_flight_name(counter.name)]
        hard = counter.cap.hard
        args += [to_nano_usd(counter.cap.usd), PERIOD_TTL_S.get(counter.period, 0), int(hard)]
        for request in requests:
            amount = request.worst_case_usd if hard else request.expected_usd
            args.append(to_nano_usd(amount, ROUND_CEILING))
    try:
        held, refused, _ = await RESERVE_MANY.run_batched(names, args)
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
        if any(c.cap is not None and c.cap.hard for c in counters):
            raise _unverifiable() from None
        return {}
    outage.recovered()
    if not int(held):
        raise _refusal(counters[int(refused) - 1], sum((r.worst_case_usd for r in requests), Decimal(0)))
    return holds


async def spend_holds_release(*, tenant_id: int, request_ids: list[str]) -> None:
    """Give back what these requests hold (requests that ended while their group was being held,
    so their own billing found no hold to release). Without Redis, their deadline does it."""
    try:
        for request_id in request_ids:
            await RELEASE.run_batched(holds_names(tenant_id), [request_id])
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
