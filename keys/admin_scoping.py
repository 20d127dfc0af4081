"""Tenant scoping for Django admin: a tenant admin sees and edits only their own tenant's rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from keys.models import Tenant

OPERATOR_PERMISSION = "keys.operate_platform"


def admin_tenant_of(request: HttpRequest) -> Tenant | None:
    """None for superusers and platform staff (they see every tenant); the member's tenant otherwise."""
    user = request.user
    if user.is_superuser:
        return None
    membership = getattr(user, "tenant_membership", None)
    return membership.tenant if membership is not None else None


def admin_is_tenant_admin(request: HttpRequest) -> bool:
    return admin_tenant_of(request) is not None


def admin_is_operator(request: HttpRequest) -> bool:
    """Superusers, and staff of the "platform operator" group who are no tenant's member."""
    user: Any = request.user
    if user.is_superuser:
        return True
    return admin_tenant_of(request) is None and bool(user.has_perm(OPERATOR_PERMISSION))


class TenantScopedAdminMixin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Filters the changelist, object lookups and tenant choices to the admin's tenant.

    `tenant_field` names the path from the model to its Tenant ("tenant", "api_key__tenant"…).
    Platform operators see every tenant; staff users who are neither operators nor tenant
    members see nothing.
    """

    tenant_field = "tenant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        tenant = admin_tenant_of(request)
        if tenant is not None:
            return queryset.filter(**{self.tenant_field: tenant})
        return queryset if admin_is_operator(request) else queryset.none()

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        tenant = admin_tenant_of(request)
        if tenant is not None and db_field.related_model is Tenant:
            kwargs["queryset"] = Tenant.objects.filter(pk=tenant.pk)
            kwargs["initial"] = tenant.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        tenant = admin_tenant_of(request)
        if tenant is not None and self.tenant_field == "tenant" and hasattr(obj, "tenant_id"):
            obj.tenant_id = tenant.pk  # a tenant admin can only create rows for their own tenant
        super().save_model(request, obj, form, change)
