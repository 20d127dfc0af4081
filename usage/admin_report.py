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


class ReportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(choices=_group_choices(with_tenant=True), initial="day")
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("name"), required=False, empty_label="All"
    )
    session_id = forms.CharField(required=False, max_length=256)
    model = forms.CharField(required=False, max_length=200)

    def __init__(self, data: Any, *, scope: UsageScope) -> None:
        today = dt.datetime.now(dt.UTC).date()
        defaults = {
            "date_from": (today - dt.timedelta(days=REPORT_DEFAULT_DAYS - 1)).isoformat(),
            "date_to": today.isoformat(),
            "group_by": "day",
        }
        super().__init__({**defaults, **{k: v for k, v in data.items() if v}})
        self.scope = scope
        if not scope.all_tenants:
            del self.fields["tenant"]  # a tenant admin has one tenant: no picker naming the others
            group_by = self.fields["group_by"]
            assert isinstance(group_by, forms.ChoiceField)
            group_by.choices = _group_choices(with_tenant=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_from", "Must not be after the end date.")
        return cleaned

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
