"""Rebuilding the Redis spend counters from the durable ledger (after a Redis flush or outage).

The ledger's totals are summed here; the counters are keys' (`keys.spend.spend_counters_raise_to`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from celery import shared_task
from django.db.models import QuerySet, Sum

from keys.models import SpendPeriod
from keys.spend import SpendTotal, period_start, spend_counters_raise_to, to_nano_usd
from usage.models import UsageDailyKeyRollup, UsageEvent, UsageRollupDelta
from usage.retention import retention_horizon

Summed = QuerySet[UsageEvent] | QuerySet[UsageDailyKeyRollup] | QuerySet[UsageRollupDelta]


def _sums(rows: Summed, period: str) -> list[SpendTotal]:
    per_key = (
        rows.filter(api_key__spend_cap_period=period)
        .values_list("tenant_id", "api_key_id")
        .annotate(total=Sum("cost_usd"))
    )
    totals = [SpendTotal(tenant_id, key_id, period, total) for tenant_id, key_id, total in per_key]
    per_tenant = (
        rows.filter(tenant__spend_cap_period=period).values_list("tenant_id").annotate(total=Sum("cost_usd"))
    )
    return totals + [SpendTotal(tenant_id, None, period, total) for tenant_id, total in per_tenant]


def ledger_totals(*, now: datetime) -> list[SpendTotal]:
    """Every key's and tenant's ledger total for its current cap period.

    Where the period reaches back past the retention horizon (a lifetime cap, once retention
    dropped a month), the dropped days count by their rollups, which hold those events' sums
    exactly (usage.partitions rolls a month up before dropping it, its deltas consumed, and never
    recomputes it after); deltas of such days are added all the same, should any be left.
    """
    horizon = retention_horizon()
    totals: list[SpendTotal] = []
    for period in SpendPeriod.values:
        since = period_start(period, now)
        if horizon is None or (since is not None and since >= horizon):
            events = (
                UsageEvent.objects.all()
                if since is None
                else UsageEvent.objects.filter(created_at__gte=since)
            )
            totals += _sums(events, period)
            continue
        parts: list[Summed] = [UsageEvent.objects.filter(created_at__gte=horizon)]
        for dropped in (UsageDailyKeyRollup.objects.all(), UsageRollupDelta.objects.all()):
            dropped = dropped.filter(day__lt=horizon.date())
            parts.append(dropped if since is None else dropped.filter(day__gte=since.date()))
        summed: defaultdict[tuple[int, int | None], Decimal] = defaultdict(Decimal)
        for total in [total for part in parts for total in _sums(part, period)]:
            summed[total.tenant_id, total.key_id] += total.usd
        totals += [SpendTotal(tenant_id, key_id, period, usd) for (tenant_id, key_id), usd in summed.items()]
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
