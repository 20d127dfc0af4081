"""Reads of usage: grouped reports from the daily rollups, the events behind them for export."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet, Sum

from keys.models import ApiKey
from usage.models import UsageDailyRollup, UsageEvent, UsageRollupStale
from usage.types import GroupBy, UsageFilter, UsageGroup, UsageReport, UsageTotals

METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
# The rollup columns each grouping reads, the group's value first.
GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    "session_id": ("session_id",),
    "key": ("api_key_id", "api_key__prefix", "api_key__name"),
    "model": ("model",),
    "tenant": ("tenant_id", "tenant__name"),
}
# CSV column → event field, in export order.
EXPORT_FIELDS: dict[str, str] = {
    "created_at": "created_at", "request_id": "request_id", "tenant": "tenant__name",
    "key_prefix": "api_key__prefix", "session_id": "session_id", "template_id": "template_id",
    "template_version": "template_version", "model_requested": "model_requested",
    "model_served": "model_served", "provider": "provider", "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens", "cached_tokens": "cached_tokens",
    "tokens_estimated": "tokens_estimated", "cost_usd": "cost_usd", "latency_ms": "latency_ms",
    "ttft_ms": "ttft_ms", "http_status": "http_status", "error_code": "error_code",
    "streamed": "streamed", "cancelled": "cancelled",
}  # fmt: skip


def usage_key_of_tenant(*, tenant_id: int, ref: str) -> ApiKey | None:
    """One of the tenant's keys by id or display prefix (never another tenant's)."""
    keys = ApiKey.objects.filter(tenant_id=tenant_id)
    match = Q(prefix=ref) | (Q(pk=int(ref)) if ref.isdigit() else Q())
    return keys.filter(match).order_by("pk").first()


def _rollups(usage_filter: UsageFilter) -> QuerySet[UsageDailyRollup]:
    """The index of every branch starts with (tenant, day) or (day): see UsageDailyRollup.Meta."""
    rows = UsageDailyRollup.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        rows = rows.filter(tenant_id=usage_filter.tenant_id)
    if usage_filter.session_id is not None:
        rows = rows.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        rows = rows.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        rows = rows.filter(model=usage_filter.model)
    return rows


def _totals(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        requests=row["requests"] or 0,
        errors=row["errors"] or 0,
        prompt_tokens=row["prompt_tokens"] or 0,
        completion_tokens=row["completion_tokens"] or 0,
        cached_tokens=row["cached_tokens"] or 0,
        cost_usd=row["cost_usd"] or Decimal(0),
    )


def _group(group_by: GroupBy, row: dict[str, Any]) -> UsageGroup:
    value = row[GROUP_FIELDS[group_by][0]]
    return UsageGroup(
        value=value.isoformat() if isinstance(value, dt.date) else str(value),
        totals=_totals(row),
        key_prefix=row.get("api_key__prefix"),
        key_name=row.get("api_key__name"),
        tenant_name=row.get("tenant__name"),
    )


def usage_report(
    *, usage_filter: UsageFilter, group_by: GroupBy, offset: int = 0, limit: int | None = None
) -> UsageReport:
    """Totals and groups from the rollups; days in date order, other groups by cost, largest first."""
    rows = _rollups(usage_filter)
    sums = {name: Sum(name) for name in METRICS}
    fields = GROUP_FIELDS[group_by]
    ordering = [fields[0]] if group_by == "day" else [F("cost_usd").desc(), fields[0]]
    grouped = rows.values(*fields).annotate(**sums).order_by(*ordering)
    page = grouped[offset : offset + limit] if limit is not None else grouped[offset:]
    return UsageReport(
        filter=usage_filter,
        group_by=group_by,
        totals=_totals(rows.aggregate(**sums)),
        groups=[_group(group_by, row) for row in page],
        group_count=grouped.count(),
    )


def usage_daily_spend(*, usage_filter: UsageFilter) -> list[tuple[dt.date, Decimal]]:
    """Cost per day over the whole range, days without usage included as zero (the chart's bars)."""
    spent = dict(_rollups(usage_filter).values_list("day").annotate(cost=Sum("cost_usd")).order_by())
    days = (usage_filter.date_to - usage_filter.date_from).days + 1
    dates = [usage_filter.date_from + dt.timedelta(days=n) for n in range(days)]
    return [(day, spent.get(day) or Decimal(0)) for day in dates]


def usage_stale_days(*, usage_filter: UsageFilter) -> int:
    """How many (day, tenant) slices in range wait for the next rollup (their numbers may lag)."""
    stale = UsageRollupStale.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        stale = stale.filter(tenant_id=usage_filter.tenant_id)
    return stale.count()


def usage_events_export(*, usage_filter: UsageFilter, chunk_size: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Every event in range, oldest first, streamed from a server-side cursor `chunk_size` rows at a time."""
    start = dt.datetime.combine(usage_filter.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(usage_filter.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    events = UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    if usage_filter.tenant_id is not None:
        events = events.filter(tenant_id=usage_filter.tenant_id)
    if usage_filter.session_id is not None:
        events = events.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        events = events.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        events = events.filter(
            Q(model_served=usage_filter.model) | Q(model_served="", model_requested=usage_filter.model)
        )
    rows = events.order_by("created_at", "id").values_list(*EXPORT_FIELDS.values())
    return rows.iterator(chunk_size=chunk_size)
