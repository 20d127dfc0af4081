"""The admin index's dashboard: spend today and this month, top tenants, the last hour's error rate
and upstream failures — scoped like the report (one tenant for a tenant admin)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q

from usage.admin_report import UsageScope
from usage.models import UsageEvent
from usage.money import share
from usage.selectors import usage_report
from usage.types import UsageFilter

TOP_TENANTS = 5
# Answers the gateway gave because an upstream failed (mapped errors, timeouts, no provider).
UPSTREAM_FAILURE_CODES = ("upstream_error", "gateway_timeout", "provider_not_available")


@dataclass(frozen=True, slots=True)
class Dashboard:
    spend_today: Decimal
    spend_month: Decimal
    requests_today: int
    top_tenants: list[tuple[str, Decimal, str]]  # name, spend this month, share
    hour_requests: int
    hour_errors: int
    hour_upstream_failures: int

    @property
    def hour_error_rate(self) -> str:
        return share(Decimal(self.hour_errors), Decimal(self.hour_requests))


def dashboard_build(*, scope: UsageScope, now: dt.datetime | None = None) -> Dashboard:
    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    tenant_id = scope.tenant.pk if scope.tenant is not None else None
    day = usage_report(usage_filter=UsageFilter(tenant_id, today, today), group_by="day")
    month_filter = UsageFilter(tenant_id, today.replace(day=1), today)
    if scope.all_tenants:
        month = usage_report(usage_filter=month_filter, group_by="tenant", limit=TOP_TENANTS)
        whole = month.totals.cost_usd
        tops = [
            (g.tenant_name or g.value, g.totals.cost_usd, share(g.totals.cost_usd, whole))
            for g in month.groups
        ]
    else:
        month, tops = usage_report(usage_filter=month_filter, group_by="day"), []
    events = UsageEvent.objects.filter(created_at__gte=now - dt.timedelta(hours=1), provisional=False)
    if tenant_id is not None:
        events = events.filter(tenant_id=tenant_id)
    hour = events.aggregate(
        requests=Count("id"),
        errors=Count("id", filter=Q(http_status__gte=400)),
        upstream=Count("id", filter=Q(error_code__in=UPSTREAM_FAILURE_CODES)),
    )
    return Dashboard(
        spend_today=day.totals.cost_usd,
        spend_month=month.totals.cost_usd,
        requests_today=day.totals.requests,
        top_tenants=tops,
        hour_requests=hour["requests"],
        hour_errors=hour["errors"],
        hour_upstream_failures=hour["upstream"],
    )
