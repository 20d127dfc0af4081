"""Spend caps: running spend per key and tenant per period, kept in Redis as integer nano-USD.

Soft caps refuse a request once recorded spend has reached the cap. Hard caps reserve the
request's worst-case cost before the upstream call (atomically against the key's and the
tenant's counters) and settle to the real cost when the request is billed; a hold whose
request never settles (its worker died) is released after its deadline by the next
reservation. All of a tenant's counters share the hash tag `{mesh:spend:<tenant id>}`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.conf import settings

from keys.types import ResolvedKey, SpendCap
from meshplatform.errors import SpendLimitExceeded
from meshplatform.redis import REDIS_UNAVAILABLE, OutageLog, get_sync_redis
from meshplatform.redis_batch import redis_batched
from meshplatform.redis_scripts import RedisScript

outage = OutageLog("spend counters")
NANO = Decimal("0.000000001")
DAY_S = 86400
# Counters outlive their period by a day, then Redis forgets them (the ledger keeps the truth).
PERIOD_TTL_S = {"daily": 2 * DAY_S, "monthly": 33 * DAY_S, "lifetime": 0}

# Releases a hold: `held` is "<nano-USD> <counter> [<counter>]" as written by RESERVE.
_RELEASE_LUA = """
local function release(held)
  local amount = nil
  for part in string.gmatch(held, '%S+') do
    if amount == nil then amount = part else redis.call('DECRBY', part, amount) end
  end
end
local function add(name, amount, ttl)
  redis.call('INCRBY', name, amount)
  if tonumber(ttl) > 0 and redis.call('TTL', name) == -1 then redis.call('EXPIRE', name, ttl) end
end
"""

# KEYS: holds hash, hold deadlines zset, then the hard-capped counters.
# ARGV: request id, amount, deadline, now, then per counter: cap, ttl.
# Returns {1} when held, {0, index of the refusing counter, its spend} when it does not fit.
RESERVE = RedisScript(
    _RELEASE_LUA
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  local held = redis.call('HGET', KEYS[1], id)
  if held then release(held) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local amount = tonumber(ARGV[2])
local counters = #KEYS - 2
for i = 1, counters do
  local spent = tonumber(redis.call('GET', KEYS[i + 2]) or '0')
  if spent + amount > tonumber(ARGV[3 + 2 * i]) then return {0, i, spent} end
end
local held = ARGV[2]
for i = 1, counters do
  add(KEYS[i + 2], ARGV[2], ARGV[4 + 2 * i])
  held = held .. ' ' .. KEYS[i + 2]
end
redis.call('HSET', KEYS[1], ARGV[1], held)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {1, 0, 0}
"""
)

# KEYS: holds hash, hold deadlines zset, last-use zset, then the counters to bill.
# ARGV: request id, amount, key id, now, then a ttl per counter.
# Releases the request's hold (if any is left), adds the real cost and stamps the key's last use.
BILL = RedisScript(
    _RELEASE_LUA
    + """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  release(held)
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('ZADD', KEYS[3], 'GT', ARGV[4], ARGV[3])
for i = 4, #KEYS do add(KEYS[i], ARGV[2], ARGV[i + 1]) end
return 1
"""
)


def to_nano_usd(usd: Decimal, rounding: str = ROUND_HALF_UP) -> int:
    return int((usd / NANO).to_integral_value(rounding=rounding))


def period_start(period: str, when: datetime) -> datetime | None:
    """Where the calendar (UTC) period containing `when` begins; None for lifetime."""
    if period == "daily":
        return when.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


def period_label(period: str, when: datetime) -> str:
    """The name of the calendar (UTC) bucket `when` falls in for a cap period (its start)."""
    start = period_start(period, when)
    if start is None:
        return "all"
    return start.strftime("d%Y%m%d" if period == "daily" else "m%Y%m")


def spend_tag(tenant_id: int) -> str:
    return f"{{mesh:spend:{tenant_id}}}"


def key_counter_name(tenant_id: int, key_id: int, period: str, when: datetime) -> str:
    return f"{spend_tag(tenant_id)}:k:{key_id}:{period_label(period, when)}"


def tenant_counter_name(tenant_id: int, period: str, when: datetime) -> str:
    return f"{spend_tag(tenant_id)}:t:{period_label(period, when)}"


def last_used_name(tenant_id: int) -> str:
    """Last-use stamps of a tenant's keys (per tenant, so billing stamps them in the same slot)."""
    return f"{spend_tag(tenant_id)}:last_used"


def holds_names(tenant_id: int) -> list[str]:
    return [f"{spend_tag(tenant_id)}:holds", f"{spend_tag(tenant_id)}:hold_deadlines"]


@dataclass(frozen=True, slots=True)
class CapCounter:
    name: str
    period: str
    cap: SpendCap | None
    scope: str


def spend_counters(key: ResolvedKey, when: datetime) -> list[CapCounter]:
    """The key's and its tenant's counters for the period `when` falls in (capped or not)."""
    return [
        CapCounter(
            key_counter_name(key.tenant_id, key.key_id, key.key_spend_period, when),
            key.key_spend_period,
            key.key_cap,
            "key",
        ),
        CapCounter(
            tenant_counter_name(key.tenant_id, key.tenant_spend_period, when),
            key.tenant_spend_period,
            key.tenant_cap,
            "tenant",
        ),
    ]


def _refusal(counter: CapCounter) -> SpendLimitExceeded:
    assert counter.cap is not None
    return SpendLimitExceeded(
        f"The {counter.scope}'s spend cap of ${counter.cap.usd} ({counter.cap.period}) has been reached.",
    )


async def spend_cap_check(*, key: ResolvedKey) -> None:
    """402 once recorded spend has reached a soft cap (hard caps are checked by `spend_reserve`,
    which also gives back the holds of crashed workers: checking them here could lock a key out)."""
    counters = [c for c in spend_counters(key, datetime.now(UTC)) if c.cap is not None and not c.cap.hard]
    if not counters:
        return
    try:
        values = await redis_batched("MGET", *(c.name for c in counters))
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
        return
    outage.recovered()
    for counter, raw in zip(counters, values, strict=True):
        assert counter.cap is not None
        if int(raw or 0) >= to_nano_usd(counter.cap.usd):
            raise _refusal(counter)


@dataclass(frozen=True, slots=True)
class SpendHold:
    """A worst-case cost held against hard caps until the request is billed."""

    request_id: str
    nano_usd: int


async def spend_reserve(
    *, key: ResolvedKey, request_id: str, worst_case_usd: Decimal, at: float, hold_s: float
) -> SpendHold | None:
    """Hold `worst_case_usd` against every hard cap of the key and tenant, or 402 if it does not fit.

    Soft caps hold nothing. `hold_s` is the request's upstream timeout: a hold still unsettled
    after three times that plus MESH_SPEND_HOLD_GRACE_S (its worker died) is given back.
    """
    when = datetime.fromtimestamp(at, UTC)
    counters = [c for c in spend_counters(key, when) if c.cap is not None and c.cap.hard]
    if not counters:
        return None
    amount = to_nano_usd(worst_case_usd, ROUND_CEILING)
    now = time.time()
    deadline = now + 3 * hold_s + settings.MESH_SPEND_HOLD_GRACE_S
    args: list[str | int | float] = [request_id, amount, deadline, now]
    for counter in counters:
        assert counter.cap is not None
        args += [to_nano_usd(counter.cap.usd), PERIOD_TTL_S.get(counter.period, 0)]
    try:
        held, refused, _ = await RESERVE.run_batched(
            [*holds_names(key.tenant_id), *(c.name for c in counters)], args
        )
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
        raise _unverifiable() from None
    outage.recovered()
    if not int(held):
        counter = counters[int(refused) - 1]
        assert counter.cap is not None
        raise SpendLimitExceeded(
            f"This request could cost up to ${worst_case_usd:.6f}, more than is left under the "
            f"{counter.scope}'s hard spend cap of ${counter.cap.usd} ({counter.cap.period}).",
        )
    return SpendHold(request_id=request_id, nano_usd=amount)


async def spend_add(
    *, key: ResolvedKey, cost_usd: Decimal, at: float | None = None, request_id: str | None = None
) -> None:
    """Bill a finished request in one round trip: release its hold (if it had one), add its real
    cost to the key's and tenant's counters (capped or not, so a cap set later starts from the
    truth) and stamp the key's last use (written to the database by a periodic task)."""
    counters = spend_counters(key, datetime.fromtimestamp(at or time.time(), UTC))
    ttls = [PERIOD_TTL_S.get(c.period, 0) for c in counters]
    names = [*holds_names(key.tenant_id), last_used_name(key.tenant_id), *(c.name for c in counters)]
    amount = to_nano_usd(max(cost_usd, Decimal(0)))
    try:
        await BILL.run_batched(names, [request_id or "", amount, key.key_id, time.time(), *ttls])
    except REDIS_UNAVAILABLE as error:
        # The ledger keeps the event; the rebuild task restores the counter from it.
        outage.failed(error)
        return
    outage.recovered()


def _unverifiable() -> SpendLimitExceeded:
    """Hard caps fail closed: without Redis the gateway cannot prove the request fits."""
    return SpendLimitExceeded(
        "A hard spend cap applies and cannot be checked right now; try again shortly.",
        retry_after_seconds=1,
    )


# KEYS: counter. ARGV: ledger total (nano-USD), ttl. Raises the counter to the ledger's total,
# never lowers it: the counter may already hold requests billed after the ledger was summed
# (and hard-cap holds), and the ledger never holds more than what was billed.
RAISE_TO = RedisScript(
    """
local total = tonumber(ARGV[1])
if total > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], ARGV[1]) end
if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
"""
)


@dataclass(frozen=True, slots=True)
class SpendTotal:
    """What the ledger holds for one counter of the current period: a key's, or (key_id None) its
    tenant's."""

    tenant_id: int
    key_id: int | None
    period: str
    usd: Decimal


def spend_counters_raise_to(*, totals: Iterable[SpendTotal], now: datetime) -> int:
    """Raise each counter of the period containing `now` to at least its ledger total (the remedy
    after a Redis flush; idempotent, never lowers a counter). Returns how many were given."""
    redis = get_sync_redis()
    count = 0
    for total in totals:
        if total.key_id is None:
            name = tenant_counter_name(total.tenant_id, total.period, now)
        else:
            name = key_counter_name(total.tenant_id, total.key_id, total.period, now)
        RAISE_TO.run_sync(redis, [name], [to_nano_usd(total.usd), PERIOD_TTL_S.get(total.period, 0)])
        count += 1
    return count
