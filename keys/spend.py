"""Spend caps: running spend per key and tenant per period, kept in Redis as integer nano-USD."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from redis.exceptions import RedisError

from keys.types import ResolvedKey, SpendCap
from meshplatform.errors import SpendLimitExceeded
from meshplatform.redis import OutageLog, get_redis

outage = OutageLog("spend counters")
NANO = Decimal("0.000000001")


def to_nano_usd(usd: Decimal) -> int:
    return int((usd / NANO).to_integral_value(rounding=ROUND_HALF_UP))


def period_label(period: str, when: datetime) -> str:
    """The calendar (UTC) bucket a moment falls in for a cap period."""
    if period == "daily":
        return when.strftime("%Y%m%d")
    if period == "monthly":
        return when.strftime("%Y%m")
    return "all"


def spend_counter_name(scope: str, owner_id: int, period: str, when: datetime) -> str:
    return f"mesh:spend:{scope}:{owner_id}:{period_label(period, when)}"


@dataclass(frozen=True, slots=True)
class CapCounter:
    name: str
    cap: SpendCap
    scope: str


def cap_counters(key: ResolvedKey, when: datetime) -> list[CapCounter]:
    counters = []
    if key.key_cap is not None:
        counters.append(
            CapCounter(spend_counter_name("key", key.key_id, key.key_cap.period, when), key.key_cap, "key")
        )
    if key.tenant_cap is not None:
        counters.append(
            CapCounter(
                spend_counter_name("tenant", key.tenant_id, key.tenant_cap.period, when), key.tenant_cap, "tenant"
            )
        )
    return counters


async def spend_cap_check(*, key: ResolvedKey) -> None:
    """402 once recorded spend has reached a cap (soft: requests in flight still finish)."""
    counters = cap_counters(key, datetime.now(UTC))
    if not counters:
        return
    try:
        values = await get_redis().mget([c.name for c in counters])
    except (RedisError, OSError) as error:
        outage.failed(error)
        return
    outage.recovered()
    for counter, raw in zip(counters, values, strict=True):
        spent = int(raw or 0)
        if spent >= to_nano_usd(counter.cap.usd):
            raise SpendLimitExceeded(
                f"The {counter.scope}'s spend cap of ${counter.cap.usd} ({counter.cap.period}) has been reached.",
            )


async def spend_add(*, key: ResolvedKey, cost_usd: Decimal, at: float | None = None) -> None:
    """Add a billed request's cost to every counter that caps this key."""
    if cost_usd <= 0:
        return
    counters = cap_counters(key, datetime.fromtimestamp(at or time.time(), UTC))
    if not counters:
        return
    amount = to_nano_usd(cost_usd)
    try:
        async with get_redis().pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.incrby(counter.name, amount)
            await pipe.execute()
    except (RedisError, OSError) as error:
        # The ledger keeps the event; the rebuild task restores the counter from it.
        outage.failed(error)
