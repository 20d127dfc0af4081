"""The finance report in the admin: who may see which tenants, the report's form, and the streamed CSV."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import itertools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import connection
from django.http import HttpRequest

from keys.admin_scoping import admin_tenant_of
from keys.models import Tenant
from usage.selectors import EXPORT_FIELDS, usage_events_export
from usage.types import ADMIN_GROUP_BY, UsageFilter

REPORT_DEFAULT_DAYS = 30
EXPORT_BATCH_ROWS = 2000
# The widest range one page covers (two years), and when its periods become weeks, then months:
# the page's size is bounded by this, whatever dates the URL asks for.
REPORT_MAX_DAYS = 731
DAILY_UP_TO_DAYS = 62
WEEKLY_UP_TO_DAYS = 366
PRESETS = {
    "today": "Today",
    "7d": "Last 7 days",
    "this_month": "This month",
    "last_month": "Last month",
    "custom": "Custom",
}


@dataclass(frozen=True, slots=True)
class UsageScope:
    """The tenants an admin user may read usage of: one (tenant admins) or all (finance, superusers)."""

    tenant: Tenant | None

    @property
    def all_tenants(self) -> bool:
        return self.tenant is None


def usage_scope_of(request: HttpRequest) -> UsageScope | None:
    """A tenant membership always narrows to that tenant; otherwise superusers and holders of
    `view_all_tenants_usage` (the finance group) see every tenant; anyone else sees nothing."""
    tenant = admin_tenant_of(request)
    if tenant is not None:
        return UsageScope(tenant=tenant)
    user: Any = request.user
    if user.is_superuser or user.has_perm("usage.view_all_tenants_usage"):
        return UsageScope(tenant=None)
    return None


def _group_choices(*, with_tenant: bool) -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in ADMIN_GROUP_BY if with_tenant or name != "tenant"]


def preset_range(preset: str, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """The dates a preset stands for (UTC), or None for "custom"."""
    if preset == "today":
        return today, today
    if preset == "7d":
        return today - dt.timedelta(days=6), today
    if preset == "this_month":
        return today.replace(day=1), today
    if preset == "last_month":
        last_day = today.replace(day=1) - dt.timedelta(days=1)
        return last_day.replace(day=1), last_day
    return None


def bucket_size(date_from: dt.date, date_to: dt.date) -> str:
    days = (date_to - date_from).days + 1
    return "day" if days <= DAILY_UP_TO_DAYS else "week" if days <= WEEKLY_UP_TO_DAYS else "month"


class ReportForm(forms.Form):
    preset = forms.ChoiceField(choices=list(PRESETS.items()), required=False, initial="custom")
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(choices=_group_choices(with_tenant=True), initial="day")
    stack_by = forms.ChoiceField(
        label="Chart by", choices=[("tenant", "tenant"), ("model", "model")], required=False, initial="model"
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("name"), required=False, empty_label="All"
    )
    session_id = forms.CharField(required=False, max_length=256)
    model = forms.CharField(required=False, max_length=200)

    def __init__(self, data: Any, *, scope: UsageScope, bounded: bool = True) -> None:
        today = dt.datetime.now(dt.UTC).date()
        defaults = {
            "date_from": (today - dt.timedelta(days=REPORT_DEFAULT_DAYS - 1)).isoformat(),
            "date_to": today.isoformat(),
            "group_by": "day",
            "stack_by": "tenant" if scope.all_tenants else "model",
        }
        given = {k: v for k, v in data.items() if v}
        dates = preset_range(str(given.get("preset", "")), today)
        if dates is not None:  # a preset wins over the dates it replaces
            given["date_from"], given["date_to"] = (d.isoformat() for d in dates)
        super().__init__({**defaults, **given})
        self.scope = scope
        # The page is built in memory, so its range is bounded; the events CSV streams from a
        # server-side cursor in flat memory, so it may cover any range.
        self.bounded = bounded
        if not scope.all_tenants:
            del self.fields["tenant"]  # a tenant admin has one tenant: no picker naming the others
            group_by, stack_by = self.fields["group_by"], self.fields["stack_by"]
            assert isinstance(group_by, forms.ChoiceField) and isinstance(stack_by, forms.ChoiceField)
            group_by.choices = _group_choices(with_tenant=False)
            stack_by.choices = [("model", "model")]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_from", "Must not be after the end date.")
        elif self.bounded and date_from and date_to and (date_to - date_from).days + 1 > REPORT_MAX_DAYS:
            self.add_error("date_from", f"A report covers at most {REPORT_MAX_DAYS} days (two years).")
        return cleaned

    @property
    def bucket(self) -> str:
        return bucket_size(self.cleaned_data["date_from"], self.cleaned_data["date_to"])

    def usage_filter(self) -> UsageFilter:
        data = self.cleaned_data
        tenant = self.scope.tenant or data.get("tenant")
        return UsageFilter(
            tenant_id=tenant.pk if tenant is not None else None,
            date_from=data["date_from"],
            date_to=data["date_to"],
            session_id=data.get("session_id") or None,
            model=data.get("model") or None,
        )


def _csv_lines(rows: list[tuple[Any, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([value.isoformat() if isinstance(value, dt.datetime) else value for value in row])
    return buffer.getvalue().encode()


async def usage_csv_stream(*, usage_filter: UsageFilter) -> AsyncIterator[bytes]:
    """The CSV body, EXPORT_BATCH_ROWS rows at a time from a server-side cursor: memory stays flat
    however many events the range holds.

    The cursor lives on one database connection, so every fetch runs on one dedicated thread
    (Django connections are per thread); that thread's connection is closed at the end.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-csv")
    loop = asyncio.get_running_loop()
    rows: Iterator[tuple[Any, ...]] | None = None

    def next_batch() -> list[tuple[Any, ...]]:
        nonlocal rows
        if rows is None:
            rows = usage_events_export(usage_filter=usage_filter, chunk_size=EXPORT_BATCH_ROWS)
        return list(itertools.islice(rows, EXPORT_BATCH_ROWS))

    def release() -> None:
        if rows is not None and hasattr(rows, "close"):
            rows.close()
        connection.close()

    try:
        yield _csv_lines([tuple(EXPORT_FIELDS)])
        while batch := await loop.run_in_executor(executor, next_batch):
            yield _csv_lines(batch)
    finally:
        await loop.run_in_executor(executor, release)
        executor.shutdown(wait=False)
