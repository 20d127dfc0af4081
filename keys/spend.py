"""Spend caps: running spend per key and tenant per period, kept in Redis as integer nano-USD.

Before the upstream call each request holds what it may cost against every cap of its key and
tenant, atomically: against a hard cap its worst case (refused with 402 if that does not fit, so
spend never ends above it), against a soft cap its expected cost, counted as in flight (refused
once recorded spend plus what is in flight has reached the cap, so concurrent requests cannot all
pass a check made before any of them is billed). Billing releases the hold and adds the real cost.
A hold whose request never settles (its worker died) is released after its deadline by the next
reservation; a stream renews its deadline while it is open. All of a tenant's counters share the
hash tag `{mesh:spend:<tenant id>}`.
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

# Releases a hold: `held` is "<nano-USD> <counter> [<nano-USD>] <counter>…" as written by RESERVE
# (an amount applies to the counters after it; counter names never look like numbers).
_RELEASE_LUA = """
local function release(held)
  local amount = nil
  for part in string.gmatch(held, '%S+') do
    if tonumber(part) then amount = part else redis.call('DECRBY', part, amount) end
  end
end
local function add(name, amount, ttl)
  redis.call('INCRBY', name, amount)
  if tonumber(ttl) > 0 and redis.call('TTL', name) == -1 then redis.call('EXPIRE', name, ttl) end
end
"""

# KEYS: holds hash, hold deadlines zset, then per capped counter: the counter, its in-flight counter.
# ARGV: request id, deadline, now, then per counter: cap, ttl, hard (1/0), amount to hold.
# A hard counter holds `amount` in the counter itself and refuses when it does not fit under the
# cap; a soft counter holds it in its in-flight counter and refuses once spend + in flight >= cap.
# Returns {1} when held, {0, index of the refusing counter, its spend} when refused.
RESERVE = RedisScript(
    _RELEASE_LUA
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  local held = redis.call('HGET', KEYS[1], id)
  if held then release(held) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local counters = (#KEYS - 2) / 2
for i = 1, counters do
  local spent = tonumber(redis.call('GET', KEYS[1 + 2 * i]) or '0')
  local cap, hard, amount = tonumber(ARGV[4 * i]), ARGV[4 * i + 2] == '1', tonumber(ARGV[4 * i + 3])
  if hard then
    if spent + amount > cap then return {0, i, spent} end
  else
    local in_flight = tonumber(redis.call('GET', KEYS[2 + 2 * i]) or '0')
    if spent + in_flight >= cap then return {0, i, spent} end
  end
end
local held = ''
for i = 1, counters do
  local target = KEYS[1 + 2 * i]
  if ARGV[4 * i + 2] ~= '1' then target = KEYS[2 + 2 * i] end
  add(target, ARGV[4 * i + 3], ARGV[4 * i + 1])
  held = held .. ARGV[4 * i + 3] .. ' ' .. target .. ' '
end
redis.call('HSET', KEYS[1], ARGV[1], held)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
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


# KEYS: holds hash, hold deadlines zset, then the counters to bill.
# ARGV: request id, delta (nano-USD), new hold deadline (0: none), then a ttl per counter.
# Bills `delta` more of a request still running. Against a hard cap the hold already counts in the
# counter: that much of the hold turns into spend (the counter moves only past the hold), so the
# worst case stays the ceiling and a hold given back later releases only what is left of it.
PROGRESS = RedisScript(
    _RELEASE_LUA
    + """
local delta = tonumber(ARGV[2])
local covered = {}
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local amount, rewritten = 0, ''
  for part in string.gmatch(held, '%S+') do
    if tonumber(part) then
      amount = tonumber(part)
    else
      local left = amount
      if string.sub(part, -10) ~= ':in_flight' then
        left = math.max(0, amount - delta)
        covered[part] = amount - left
      end
      rewritten = rewritten .. string.format('%d', left) .. ' ' .. part .. ' '
    end
  end
  redis.call('HSET', KEYS[1], ARGV[1], rewritten)
  if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1]) end
end
for i = 3, #KEYS do
  local more = delta - (covered[KEYS[i]] or 0)
  if more ~= 0 then add(KEYS[i], string.format('%d', more), ARGV[i + 1]) end
end
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
    if period == "daily":  # formatted from the fields: cheaper than replace + strftime, per bill
        return f"d{when.year:04d}{when.month:02d}{when.day:02d}"
    if period == "monthly":
        return f"m{when.year:04d}{when.month:02d}"
    return "all"


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


@dataclass(frozen=True, slots=True)
class SpendHold:
    """What a request holds against its caps until it is billed (the stream renews its deadline)."""

    request_id: str
    tenant_id: int
    hold_s: float

    def deadline(self) -> float:
        return time.time() + 3 * self.hold_s + float(settings.MESH_SPEND_HOLD_GRACE_S)


async def spend_cap_check(*, key: ResolvedKey) -> None:
    """402 once recorded spend has reached a soft cap, for a request refused before it could be
    priced (requests that are run are checked by `spend_reserve`, in flight included)."""
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
            raise _refusal(counter, Decimal(0))


def in_flight_name(counter_name: str) -> str:
    """Expected cost of a counter's requests in flight (soft caps), in the counter's slot."""
    return f"{counter_name}:in_flight"


async def spend_reserve(
    *,
    key: ResolvedKey,
    request_id: str,
    worst_case_usd: Decimal,
    expected_usd: Decimal,
    at: float,
    hold_s: float,
) -> SpendHold | None:
    """Hold the request's cost against every cap of the key and tenant, or 402: the worst case
    against hard caps, the expected cost (as in flight) against soft ones.

    `hold_s` is the request's upstream timeout: a hold still unsettled after three times that plus
    MESH_SPEND_HOLD_GRACE_S (its worker died) is given back. Without Redis, hard caps fail closed
    (nothing proves the request fits) and soft caps open (spend is still recorded and rebuilt).
    """
    when = datetime.fromtimestamp(at, UTC)
    counters = [c for c in spend_counters(key, when) if c.cap is not None]
    if not counters:
        return None
    hold = SpendHold(request_id=request_id, tenant_id=key.tenant_id, hold_s=hold_s)
    worst, expected = to_nano_usd(worst_case_usd, ROUND_CEILING), to_nano_usd(expected_usd, ROUND_CEILING)
    names = holds_names(key.tenant_id)
    args: list[str | int | float] = [request_id, hold.deadline(), time.time()]
    for counter in counters:
        assert counter.cap is not None
        names += [counter.name, in_flight_name(counter.name)]
        hard = counter.cap.hard
        args += [to_nano_usd(counter.cap.usd), PERIOD_TTL_S.get(counter.period, 0), int(hard)]
        args.append(worst if hard else expected)
    try:
        held, refused, _ = await RESERVE.run_batched(names, args)
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)
        if any(c.cap is not None and c.cap.hard for c in counters):
            raise _unverifiable() from None
        return None
    outage.recovered()
    if not int(held):
        raise _refusal(counters[int(refused) - 1], worst_case_usd)
    return hold


def _refusal(counter: CapCounter, worst_case_usd: Decimal) -> SpendLimitExceeded:
    assert counter.cap is not None
    if not counter.cap.hard:
        return SpendLimitExceeded(
            f"The {counter.scope}'s spend cap of ${counter.cap.usd} ({counter.cap.period}) has been reached.",
        )
    return SpendLimitExceeded(
        f"This request could cost up to ${worst_case_usd:.6f}, more than is left under the "
        f"{counter.scope}'s hard spend cap of ${counter.cap.usd} ({counter.cap.period}).",
    )


async def spend_progress(
    *, key: ResolvedKey, request_id: str, delta_usd: Decimal, at: float, hold: SpendHold | None
) -> None:
    """Bill `delta_usd` more of a request still running (a stream's cost so far) and push its hold's
    deadline out, in one auto-pipelined script: a stream whose worker dies is then billed for what
    it delivered, and a long stream keeps its hold while it is open (see PROGRESS)."""
    counters = spend_counters(key, datetime.fromtimestamp(at, UTC))
    names = [*holds_names(key.tenant_id), *(c.name for c in counters)]
    deadline = hold.deadline() if hold is not None else 0
    ttls = [PERIOD_TTL_S.get(c.period, 0) for c in counters]
    try:
        await PROGRESS.run_batched(names, [request_id, to_nano_usd(delta_usd), deadline, *ttls])
    except REDIS_UNAVAILABLE as error:
        outage.failed(error)  # the ledger has the progress; the rebuild task heals the counter
        return
    outage.recovered()


async def spend_add(
    *, key: ResolvedKey, cost_usd: Decimal, at: float | None = None, request_id: str | None = None
) -> None:
    """Bill a finished request in one round trip: release its hold (if it had one), add its real
    cost (less what its progress already billed) to the key's and tenant's counters (capped or not,
    so a cap set later starts from the truth) and stamp the key's last use (written to the database
    by a periodic task)."""
    counters = spend_counters(key, datetime.fromtimestamp(at or time.time(), UTC))
    ttls = [PERIOD_TTL_S.get(c.period, 0) for c in counters]
    names = [*holds_names(key.tenant_id), last_used_name(key.tenant_id), *(c.name for c in counters)]
    amount = to_nano_usd(cost_usd)  # negative when a stream's progress billed more than its final cost
    try:
        await BILL.run_batched(names, [request_id or "", amount, key.key_id, time.time(), *ttls])
    except REDIS_UNAVAILABLE as error:
        # The ledger keeps the event; the rebuild task restores the counter from it.
        outage.failed(error)
        return
    outage.recovered()


# KEYS: holds hash, hold deadlines zset. ARGV: request id. Gives back what the request still holds.
RELEASE = RedisScript(
    _RELEASE_LUA
    + """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then release(held) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return held and 1 or 0
"""
)


def spend_settle_sync(
    *, tenant_id: int, key_id: int, periods: tuple[str, str], request_id: str, cost_usd: Decimal, at: float
) -> None:
    """`spend_add` for sync code billing on behalf of a request whose worker died before billing it
    (the finaliser): releases what it holds and adds its cost to the period of `at` (`periods`: the
    key's and the tenant's cap periods)."""
    when = datetime.fromtimestamp(at, UTC)
    counters = [
        (key_counter_name(tenant_id, key_id, periods[0], when), periods[0]),
        (tenant_counter_name(tenant_id, periods[1], when), periods[1]),
    ]
    names = [*holds_names(tenant_id), last_used_name(tenant_id), *(name for name, _ in counters)]
    ttls = [PERIOD_TTL_S.get(period, 0) for _, period in counters]
    BILL.run_sync(get_sync_redis(), names, [request_id, to_nano_usd(cost_usd), key_id, at, *ttls])


def spend_hold_release_sync(*, tenant_id: int, request_id: str) -> bool:
    """Give back what a request whose worker died still holds (its spend so far was billed as it
    went, see `spend_progress`), without waiting for the hold's deadline."""
    return bool(RELEASE.run_sync(get_sync_redis(), holds_names(tenant_id), [request_id]))


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
