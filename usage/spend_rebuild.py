"""Rebuilding the Redis spend counters from the durable ledger (after a Redis flush or outage)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from celery import shared_task
from django.db.models import Sum

from keys.models import SpendPeriod
from keys.scripts import RedisScript
from keys.spend import PERIOD_TTL_S, key_counter_name, tenant_counter_name, to_nano_usd
from meshplatform.redis import get_sync_redis
from usage.models import UsageEvent

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
class RebuiltCounter:
    name: str
    period: str
    ledger_nano_usd: int


def period_start(period: str, now: datetime) -> datetime | None:
    """Where the calendar (UTC) period containing `now` begins; None for lifetime."""
    if period == SpendPeriod.DAILY:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == SpendPeriod.MONTHLY:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


def ledger_counters(*, now: datetime) -> list[RebuiltCounter]:
    """Every key's and tenant's ledger total for its current period, named as the hot path names it."""
    counters: list[RebuiltCounter] = []
    for period in SpendPeriod.values:
        since = period_start(period, now)
        events = (
            UsageEvent.objects.all() if since is None else UsageEvent.objects.filter(created_at__gte=since)
        )
        per_key = (
            events.filter(api_key__spend_cap_period=period)
            .values_list("tenant_id", "api_key_id")
            .annotate(total=Sum("cost_usd"))
        )
        for tenant_id, key_id, total in per_key:
            name = key_counter_name(tenant_id, key_id, period, now)
            counters.append(RebuiltCounter(name, period, to_nano_usd(total)))
        per_tenant = (
            events.filter(tenant__spend_cap_period=period)
            .values_list("tenant_id")
            .annotate(total=Sum("cost_usd"))
        )
        for tenant_id, total in per_tenant:
            name = tenant_counter_name(tenant_id, period, now)
            counters.append(RebuiltCounter(name, period, to_nano_usd(total)))
    return counters


def spend_counters_rebuild(*, now: datetime | None = None) -> list[RebuiltCounter]:
    """Restore the current period's counters from PostgreSQL; running it twice changes nothing."""
    now = now or datetime.now(UTC)
    counters = [c for c in ledger_counters(now=now) if c.ledger_nano_usd > 0]
    redis = get_sync_redis()
    for counter in counters:
        ttl = PERIOD_TTL_S[counter.period]
        RAISE_TO.run_sync(redis, [counter.name], [counter.ledger_nano_usd, ttl])
    return counters


@shared_task(name="usage.spend_counters_rebuild", ignore_result=True)
def spend_counters_rebuild_task() -> int:
    return len(spend_counters_rebuild())
