"""The key and tenant admin pages, composed here with what `keys` may not import (STYLE.md): the model
catalog (pick allowed and default models, searchable) and usage (a key's last 30 days, a tenant's
spend this period against its cap). `keys.admin` registers the base pages; this replaces them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from keys.admin import ApiKeyAdmin, ApiKeyForm, TenantAdmin, key_status
from keys.last_used import api_key_last_used
from keys.models import ApiKey, SpendPeriod, Tenant
from routing.models import CatalogModel
from routing.providers.registry import provider_is_configured
from usage.charts import buckets_build, spend_chart_svg
from usage.money import share, usd
from usage.selectors import usage_report, usage_spend_by_day
from usage.types import UsageFilter, UsageTotals

KEY_PANEL_DAYS = 30


def catalog_choices(current: list[str]) -> list[tuple[str, str]]:
    """Enabled catalog models, marked when their provider has no API key; ids a key already holds
    stay choosable even if the catalog dropped them (so an edit never silently loses them)."""
    rows = CatalogModel.objects.filter(enabled=True).order_by("provider", "model_id")
    choices = [
        (
            row.model_id,
            row.model_id if provider_is_configured(row.provider) else f"{row.model_id} (not configured)",
        )
        for row in rows
    ]
    known = {value for value, _ in choices}
    return choices + [
        (model_id, f"{model_id} (not in the catalog)") for model_id in current if model_id not in known
    ]


class ModelPicker(FilteredSelectMultiple):
    """Django admin's searchable two-box selector on a plain multiple choice (no M2M). Wrapped in a
    div of its own: SelectFilter2.js puts the boxes first in the select's parent, which would
    otherwise be the row that holds the field's label."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        return format_html(
            '<div class="mesh-model-picker">{}</div>', super().render(name, value, attrs, renderer)
        )


class CatalogKeyForm(ApiKeyForm):
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=ModelPicker("models", is_stacked=False),
        help_text="Models this key may use; type to filter. None chosen = any catalog model.",
    )
    default_model = forms.ChoiceField(
        required=False, help_text="Used when a request names no model and its template names none."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance: ApiKey = self.instance
        current = [
            *list(instance.allowed_models or []),
            *([instance.default_model] if instance.default_model else []),
        ]
        choices = catalog_choices(current)
        allowed = self.fields["allowed_models"]
        default = self.fields["default_model"]
        assert isinstance(allowed, forms.MultipleChoiceField) and isinstance(default, forms.ChoiceField)
        allowed.choices = choices
        default.choices = [("", "— the platform default —"), *choices]

    def clean_allowed_models(self) -> list[str]:
        return list(self.cleaned_data.get("allowed_models") or [])


def _totals_row(label: str, totals: UsageTotals) -> dict[str, Any]:
    return {
        "label": label,
        "requests": totals.requests,
        "errors": totals.errors,
        "tokens": totals.prompt_tokens + totals.completion_tokens,
        "cost": totals.cost_usd,
    }


def key_usage_panel(api_key: ApiKey) -> dict[str, Any]:
    """The key's last 30 days: totals, one row per day, and its spend chart by model."""
    today = dt.datetime.now(dt.UTC).date()
    usage_filter = UsageFilter(
        tenant_id=api_key.tenant_id,
        key_id=api_key.pk,
        date_from=today - dt.timedelta(days=KEY_PANEL_DAYS - 1),
        date_to=today,
    )
    report = usage_report(usage_filter=usage_filter, group_by="day")
    points = usage_spend_by_day(usage_filter=usage_filter, series="model")
    buckets, series = buckets_build(points, usage_filter.date_from, usage_filter.date_to, "day")
    return {
        "totals": _totals_row("Last 30 days", report.totals),
        "days": [_totals_row(group.value, group.totals) for group in reversed(report.groups)],
        "chart": spend_chart_svg(buckets, series, title="Spend per day by model, last 30 days"),
        "last_used_at": api_key_last_used(api_key),
    }


def period_range(period: str, since: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    if period == SpendPeriod.DAILY:
        return today, today
    if period == SpendPeriod.MONTHLY:
        return today.replace(day=1), today
    return since, today


def tenant_spend_panel(tenant: Tenant) -> dict[str, Any]:
    """Spend in the cap's current period against the cap, and each key's share of it."""
    today = dt.datetime.now(dt.UTC).date()
    since = timezone.localtime(tenant.created_at, dt.UTC).date() if tenant.created_at else today
    date_from, date_to = period_range(tenant.spend_cap_period, since, today)
    usage_filter = UsageFilter(tenant_id=tenant.pk, date_from=date_from, date_to=date_to)
    by_key = usage_report(usage_filter=usage_filter, group_by="key")
    spent = by_key.totals.cost_usd
    cap = tenant.spend_cap_usd
    percent = min(Decimal(100), spent * 100 / cap) if cap else None
    key_costs = {int(group.value): group.totals for group in by_key.groups}
    keys = [
        {
            "key": key,
            "cost": key_costs.get(key.pk, UsageTotals()).cost_usd,
            "share": share(key_costs.get(key.pk, UsageTotals()).cost_usd, spent),
            "status": key_status(key),
            "last_used_at": api_key_last_used(key),
        }
        for key in ApiKey.objects.filter(tenant=tenant).order_by("-created_at")
    ]
    return {
        "date_from": date_from,
        "date_to": date_to,
        "period": tenant.get_spend_cap_period_display(),
        "spent": spent,
        "cap": cap,
        "percent": percent,
        "percent_label": f"{percent:.1f}%" if percent is not None else "",
        "over": cap is not None and spent >= cap,
        "keys": keys,
        "spent_label": usd(spent),
    }


admin.site.unregister(ApiKey)
admin.site.unregister(Tenant)


@admin.register(ApiKey)
class CatalogApiKeyAdmin(ApiKeyAdmin):
    form = CatalogKeyForm
    change_form_template = "admin/keys/apikey/change_form_usage.html"
    fieldsets = [
        (None, {"fields": ["tenant", "name", "is_active", "expires_at"]}),
        ("Models", {"fields": ["allowed_models", "default_model"]}),
        ("Rate limits", {"fields": ["rpm", "rpd"], "description": "Exact fixed windows; empty = unlimited."}),
        ("Spend cap", {"fields": ["spend_cap_usd", "spend_cap_period", "hard_cap"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self.fieldsets
        return [
            *self.fieldsets,
            ("Token", {"fields": ["prefix", "revoked_at", "last_used_at", "created_at"]}),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        api_key = self.get_object(request, object_id)  # tenant-scoped: None for another tenant's key
        context = dict(extra_context or {})
        if api_key is not None:
            context["usage_panel"] = key_usage_panel(api_key)
        return super().change_view(request, object_id, form_url, extra_context=context)


@admin.register(Tenant)
class UsageTenantAdmin(TenantAdmin):
    change_form_template = "admin/keys/tenant/change_form_usage.html"
    list_display = ["name", "suspended", "cap", "spend_cap_period", "hard_cap", "created_at"]

    @admin.display(description="spend cap", ordering="spend_cap_usd")
    def cap(self, tenant: Tenant) -> str:
        return usd(tenant.spend_cap_usd) if tenant.spend_cap_usd is not None else "—"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        tenant = self.get_object(request, object_id)  # scoped: a tenant admin gets only their own
        context = dict(extra_context or {})
        if tenant is not None:
            context["spend_panel"] = tenant_spend_panel(tenant)
        return super().change_view(request, object_id, form_url, extra_context=context)
