"""Admin for tenants and keys."""

from __future__ import annotations

from django.contrib import admin

from keys.models import ApiKey, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "suspended", "spend_cap_usd", "spend_cap_period", "hard_cap", "created_at"]
    search_fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "tenant",
        "is_active",
        "revoked_at",
        "expires_at",
        "rpm",
        "rpd",
        "last_used_at",
    ]
    list_filter = ["tenant", "is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_at"]
    exclude = ["key_hash"]
