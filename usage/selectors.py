"""Reads of usage: grouped reports from the daily rollups, the events behind them for export."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate

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


def _stale_slices(usage_filter: UsageFilter) -> list[tuple[dt.date, int]]:
    """(day, tenant) slices in range whose rollups lag their events (written since the last rollup)."""
    stale = UsageRollupStale.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        stale = stale.filter(tenant_id=usage_filter.tenant_id)
    return sorted(stale.values_list("day", "tenant_id"))


def _slices_q(slices: list[tuple[dt.date, int]]) -> Q:
    match = Q(pk__in=[])
    for day, tenant_id in slices:
        match |= Q(day=day, tenant_id=tenant_id)
    return match


def _rollups(usage_filter: UsageFilter, stale: list[tuple[dt.date, int]]) -> QuerySet[UsageDailyRollup]:
    """Rollups of every slice that is current. The index of every branch starts with (tenant, day)
    or (day): see UsageDailyRollup.Meta."""
    rows = UsageDailyRollup.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        rows = rows.filter(tenant_id=usage_filter.tenant_id)
    if usage_filter.session_id is not None:
        rows = rows.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        rows = rows.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        rows = rows.filter(model=usage_filter.model)
    return rows.exclude(_slices_q(stale)) if stale else rows


def _tail(usage_filter: UsageFilter, stale: list[tuple[dt.date, int]]) -> QuerySet[UsageEvent]:
    """The events of the stale slices, shaped like rollup rows (`day`, `model`): what the next rollup
    will sum, read now so a request shows in reports within a flush of its end. Each slice is one
    range of the (tenant, created_at) index."""
    match = Q(pk__in=[])
    for day, tenant_id in stale:
        start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
        match |= Q(tenant_id=tenant_id, created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))
    events = UsageEvent.objects.filter(match).annotate(
        day=TruncDate("created_at", tzinfo=dt.UTC),
        model=Coalesce(NullIf("model_served", Value("")), "model_requested"),
    )
    if usage_filter.session_id is not None:
        events = events.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        events = events.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        events = events.filter(model=usage_filter.model)
    return events


_ROLLUP_SUMS = {name: Sum(name) for name in METRICS}
_EVENT_SUMS = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(http_status__gte=400)),
    **{name: Sum(name) for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")},
}


def _totals(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        requests=row["requests"] or 0,
        errors=row["errors"] or 0,
        prompt_tokens=row["prompt_tokens"] or 0,
        completion_tokens=row["completion_tokens"] or 0,
        cached_tokens=row["cached_tokens"] or 0,
        cost_usd=row["cost_usd"] or Decimal(0),
    )


def _add(a: UsageTotals, b: UsageTotals) -> UsageTotals:
    return UsageTotals(*(getattr(a, name) + getattr(b, name) for name in METRICS))


def _group(group_by: GroupBy, row: dict[str, Any], totals: UsageTotals) -> UsageGroup:
    value = row[GROUP_FIELDS[group_by][0]]
    return UsageGroup(
        value=value.isoformat() if isinstance(value, dt.date) else str(value),
        totals=totals,
        key_prefix=row.get("api_key__prefix"),
        key_name=row.get("api_key__name"),
        tenant_name=row.get("tenant__name"),
    )


def _grouped(rows: QuerySet[Any], fields: tuple[str, ...], sums: dict[str, Any]) -> QuerySet[Any]:
    return rows.values(*fields).annotate(**sums).order_by()


def usage_report(
    *, usage_filter: UsageFilter, group_by: GroupBy, offset: int = 0, limit: int | None = None
) -> UsageReport:
    """Totals and groups: the rollups of current slices plus the not-yet-rolled-up tail (so fresh within
    a ledger flush); days in date order, other groups by cost, largest first.

    The tail touches few groups, so the page is still cut in SQL: a group outside the tail ranks
    among the first offset+limit only if its rollup sum ranks among the first offset+limit+len(tail).
    """
    stale = _stale_slices(usage_filter)
    rollups, fields = _rollups(usage_filter, stale), GROUP_FIELDS[group_by]
    tail = {
        tuple(row[f] for f in fields): row
        for row in _grouped(_tail(usage_filter, stale), fields, _EVENT_SUMS)
    }
    grouped = _grouped(rollups, fields, _ROLLUP_SUMS)
    if group_by == "day" or limit is None:
        candidates = list(grouped)
    else:
        ranked = grouped.order_by(F("cost_usd").desc(), fields[0])[: offset + limit + len(tail)]
        candidates = list(ranked)
        seen = {tuple(row[f] for f in fields) for row in candidates}
        missing = [key for key in tail if key not in seen]
        if missing:
            candidates += list(grouped.filter(**{f"{fields[0]}__in": [key[0] for key in missing]}))
    merged: dict[tuple[Any, ...], tuple[dict[str, Any], UsageTotals]] = {}
    for row in candidates:
        merged[tuple(row[f] for f in fields)] = (row, _totals(row))
    for key, row in tail.items():
        base = merged.get(key)
        merged[key] = (row, _add(base[1], _totals(row)) if base else _totals(row))
    if group_by == "day":
        ordered = sorted(merged.values(), key=lambda item: item[0]["day"])
    else:
        ordered = sorted(merged.values(), key=lambda item: (-item[1].cost_usd, str(item[0][fields[0]])))
    page = ordered[offset : offset + limit] if limit is not None else ordered[offset:]
    first = fields[0]
    in_rollups = set(
        grouped.filter(**{f"{first}__in": [key[0] for key in tail]}).values_list(first, flat=True)
    )
    new_groups = sum(1 for key in tail if key[0] not in in_rollups)
    totals = _add(
        _totals(rollups.aggregate(**_ROLLUP_SUMS)),
        _totals(_tail(usage_filter, stale).aggregate(**_EVENT_SUMS)),
    )
    return UsageReport(
        filter=usage_filter,
        group_by=group_by,
        totals=totals,
        groups=[_group(group_by, row, totals_) for row, totals_ in page],
        group_count=grouped.count() + new_groups,
    )


def usage_spend_by_day(*, usage_filter: UsageFilter, series: GroupBy) -> list[tuple[dt.date, str, Decimal]]:
    """Cost per (day, series value) over the range, fresh like usage_report (the report's chart)."""
    stale = _stale_slices(usage_filter)
    name = GROUP_FIELDS[series][-1] if series in ("tenant", "key") else GROUP_FIELDS[series][0]
    spent: dict[tuple[dt.date, str], Decimal] = {}
    for rows in (_rollups(usage_filter, stale), _tail(usage_filter, stale)):
        for day, value, cost in rows.values_list("day", name).annotate(cost=Sum("cost_usd")).order_by():
            spent[(day, str(value))] = spent.get((day, str(value)), Decimal(0)) + (cost or Decimal(0))
    return sorted((day, value, cost) for (day, value), cost in spent.items())


def usage_daily_spend(*, usage_filter: UsageFilter) -> list[tuple[dt.date, Decimal]]:
    """Cost per day over the whole range, days without usage included as zero."""
    spent: dict[dt.date, Decimal] = {}
    for day, _, cost in usage_spend_by_day(usage_filter=usage_filter, series="day"):
        spent[day] = spent.get(day, Decimal(0)) + cost
    days = (usage_filter.date_to - usage_filter.date_from).days + 1
    dates = [usage_filter.date_from + dt.timedelta(days=n) for n in range(days)]
    return [(day, spent.get(day) or Decimal(0)) for day in dates]


def usage_stale_days(*, usage_filter: UsageFilter) -> int:
    """How many (day, tenant) slices in range wait for the next rollup (read from their events meanwhile)."""
    return len(_stale_slices(usage_filter))


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
