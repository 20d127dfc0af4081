"""Admin for async jobs, files, batches and the tenants' webhook secrets (each tenant admin sees
only their tenant's rows). Jobs, files and batches are read-only: the API changes them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import Batch, Job, StoredFile, WebhookSecret
from jobs.services.webhooks import webhook_secret_rotate
from keys.admin_scoping import TenantScopedAdminMixin


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookSecret)
class WebhookSecretAdmin(TenantScopedAdminMixin):
    """The secret a tenant's webhook receivers verify `Mesh-Signature` with (README: Async jobs)."""

    list_display = ["tenant", "secret", "created_at"]
    readonly_fields = ["secret", "created_at"]
    fields = ["tenant", "secret", "created_at"]
    actions = ["rotate"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the secret is generated; rotate it with the action

    @admin.action(
        description="Rotate the selected secrets (receivers must switch to the new one)", permissions=["add"]
    )
    def rotate(self, request: HttpRequest, queryset: QuerySet[WebhookSecret]) -> None:
        for secret in queryset:
            webhook_secret_rotate(secret=secret)
        messages.success(request, f"Rotated {queryset.count()} webhook secret(s).")


@admin.register(Job)
class JobAdmin(TenantScopedAdminMixin, ReadOnly):
    list_display = [
        "id",
        "tenant",
        "status",
        "model",
        "session_id",
        "created_at",
        "completed_at",
        "webhook_status",
    ]
    list_filter = ["status", "webhook_status"]
    search_fields = ["=id", "=request_id", "=session_id"]
    search_help_text = "An exact job id, request_id or session_id."
    ordering = ["-created_at"]
    list_select_related = ["tenant"]


@admin.register(StoredFile)
class StoredFileAdmin(TenantScopedAdminMixin, ReadOnly):
    list_display = ["id", "tenant", "purpose", "filename", "bytes", "created_at"]
    list_filter = ["purpose"]
    search_fields = ["=id", "filename"]
    ordering = ["-created_at"]
    list_select_related = ["tenant"]


@admin.register(Batch)
class BatchAdmin(TenantScopedAdminMixin, ReadOnly):
    list_display = ["id", "tenant", "status", "total", "completed", "failed", "created_at", "completed_at"]
    list_filter = ["status"]
    search_fields = ["=id"]
    ordering = ["-created_at"]
    list_select_related = ["tenant"]
