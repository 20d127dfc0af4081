"""The audit log in the admin: readable (a tenant admin sees their tenant's entries), never editable."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from keys.admin_scoping import TenantScopedAdminMixin, admin_is_operator
from keys.models import AuditEntry, Tenant


class AuditTenantFilter(admin.SimpleListFilter):
    """Tenants by name, offered only to who sees every tenant (a tenant admin sees only theirs)."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        if not admin_is_operator(request):
            return []
        return [(str(pk), name) for pk, name in Tenant.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(tenant_id=int(value)) if value and value.isdigit() else queryset


LIST_VALUE_CHARS = 160


def _json(value: Any, limit: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def change_summary(entry: AuditEntry) -> str:
    """One line for the list: `rpm: null → 120; hard_cap: false → true`, cut at LIST_VALUE_CHARS."""
    before, after = entry.before or {}, entry.after or {}
    parts = []
    for name in sorted(set(before) | set(after)):
        if name in before and name in after:
            parts.append(f"{name}: {_json(before[name], 40)} → {_json(after[name], 40)}")
        elif name in after:
            parts.append(f"{name}={_json(after[name], 40)}")
        else:
            parts.append(f"{name} was {_json(before[name], 40)}")
    text = "; ".join(parts) or "—"
    return text if len(text) <= LIST_VALUE_CHARS else text[: LIST_VALUE_CHARS - 1] + "…"


def change_table(entry: AuditEntry, limit: int | None = None) -> str:
    before, after = entry.before or {}, entry.after or {}
    names = sorted(set(before) | set(after))
    rows = format_html_join(
        "",
        '<tr><th>{}</th><td class="audit-before">{}</td><td class="audit-after">{}</td></tr>',
        (
            (
                name,
                _json(before[name], limit) if name in before else "—",
                _json(after[name], limit) if name in after else "—",
            )
            for name in names
        ),
    )
    return format_html('<table class="audit-change">{}</table>', rows) if names else "—"


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdminMixin):
    list_display = ["created_at", "action", "target_repr", "change", "actor", "source", "tenant"]
    list_filter = [AuditTenantFilter, "source", "action"]
    search_fields = ["=target_id", "actor", "target_repr"]
    search_help_text = "Actor, target name, or an exact target id."
    list_select_related = ["tenant"]
    show_full_result_count = False
    fields = ("created_at", "actor", "source", "action", "tenant", "target_type", "target_id", "target_repr",
              "change_full")  # fmt: skip
    readonly_fields = fields

    class Media:
        css = {"all": ["mesh/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="change")
    def change(self, entry: AuditEntry) -> str:
        return change_summary(entry)

    @admin.display(description="before → after")
    def change_full(self, entry: AuditEntry) -> str:
        return change_table(entry)
