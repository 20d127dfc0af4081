"""Rebuilding the Redis spend counters from the durable ledger (after a Redis flush or outage).

The ledger's totals are summed here; the counters are keys' (`keys.spend.spend_counters_raise_to`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from celery import shared_task
from django.db.models import Sum

from keys.models import SpendPeriod
from keys.spend import SpendTotal, period_start, spend_counters_raise_to, to_nano_usd
from usage.models import UsageEvent


def ledger_totals(*, now: datetime) -> list[SpendTotal]:
    """Every key's and tenant's ledger total for its current cap period."""
    totals: list[SpendTotal] = []
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
        totals += [SpendTotal(tenant_id, key_id, period, total) for tenant_id, key_id, total in per_key]
        per_tenant = (
            events.filter(tenant__spend_cap_period=period)
            .values_list("tenant_id")
            .annotate(total=Sum("cost_usd"))
        )
        totals += [SpendTotal(tenant_id, None, period, total) for tenant_id, total in per_tenant]
    return totals


def spend_counters_rebuild(*, now: datetime | None = None) -> list[SpendTotal]:
    """Restore the current period's counters from PostgreSQL; running it twice changes nothing."""
    now = now or datetime.now(UTC)
    totals = [total for total in ledger_totals(now=now) if to_nano_usd(total.usd) > 0]
    spend_counters_raise_to(totals=totals, now=now)
    return totals


@shared_task(name="usage.spend_counters_rebuild", ignore_result=True)
def spend_counters_rebuild_task() -> int:
    return len(spend_counters_rebuild())
