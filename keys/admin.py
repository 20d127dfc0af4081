"""Admin for tenants and keys: plaintext shown once on creation and rotation, never listed or stored."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from keys import admin_audit  # noqa: F401  (registers the audit log)
from keys.admin_scoping import TenantScopedAdminMixin, admin_is_operator, admin_tenant_of
from keys.models import ApiKey, Tenant, TenantMember
from keys.services import (
    CreatedKey,
    api_key_delete,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    api_key_save,
    tenant_member_add,
    tenant_member_remove,
    tenant_save,
    tenant_suspend,
)

CREATED_TEMPLATE = "admin/keys/apikey/key_created.html"
ROTATE_TEMPLATE = "admin/keys/apikey/rotate.html"


class TenantMemberInline(admin.TabularInline):  # type: ignore[type-arg]
    """The tenant's admins (staff users who see only this tenant); operators add and remove them."""

    model = TenantMember
    extra = 0
    autocomplete_fields = ["user"]
    verbose_name = "member (tenant admin)"
    verbose_name_plural = "members (tenant admins)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_is_operator(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_is_operator(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_is_operator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the page itself is scoped: a tenant admin only ever opens their own tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Platform operators manage every tenant; a tenant admin sees their own tenant's page, read-only
    (its caps, ceilings and members), and never the list of the others."""

    list_display = ["name", "suspended", "spend_cap_usd", "spend_cap_period", "hard_cap", "created_at"]
    search_fields = ["name"]
    actions = ["suspend", "reinstate"]
    inlines = [TenantMemberInline]
    fieldsets = [
        (None, {"fields": ["name", "suspended"]}),
        ("Spend cap", {"fields": ["spend_cap_usd", "spend_cap_period", "hard_cap"]}),
        (
            "Ceilings for the tenant's own admins",
            {
                "fields": ["key_rpm_ceiling", "key_rpd_ceiling", "key_spend_cap_ceiling_usd"],
                "description": "The highest limits a tenant admin may give one of the tenant's keys.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        queryset = super().get_queryset(request)
        tenant = admin_tenant_of(request)
        if tenant is not None:
            return queryset.filter(pk=tenant.pk)
        return queryset if admin_is_operator(request) else queryset.none()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return admin_is_operator(request) or admin_tenant_of(request) is not None

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Members through the services, so adding or removing a tenant admin is audited."""
        if formset.model is not TenantMember:
            super().save_formset(request, form, formset, change)
            return
        members = formset.save(commit=False)
        for member in formset.deleted_objects:
            tenant_member_remove(member=member)
        for member in members:
            if member.pk is None:
                tenant_member_add(tenant=form.instance, member=member)
            else:
                member.save()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if admin_is_operator(request):
            return True
        tenant = admin_tenant_of(request)
        return tenant is not None and (obj is None or obj.pk == tenant.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return admin_is_operator(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_is_operator(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_is_operator(request)

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        tenant_save(tenant=obj)

    @admin.action(description="Suspend selected tenants (every key gets 403)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_suspend(tenant=tenant, suspended=True)
        self.message_user(request, f"Suspended {len(queryset)} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reinstate selected tenants")
    def reinstate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_suspend(tenant=tenant, suspended=False)
        self.message_user(request, f"Reinstated {len(queryset)} tenant(s).", messages.SUCCESS)


class ApiKeyForm(forms.ModelForm):  # type: ignore[type-arg]
    # Set (by ApiKeyAdmin.get_form) for a tenant admin: the operator's ceilings bound their limits.
    ceilings: Tenant | None = None

    class Meta:
        model = ApiKey
        exclude = ["key_hash"]
        labels = {"rpm": "Requests per minute (RPM)", "rpd": "Requests per day (RPD)",
                  "spend_cap_usd": "Spend cap (USD)"}  # fmt: skip
        help_texts = {
            "spend_cap_usd": "US dollars per period; empty = no cap of its own (the tenant's still applies).",
            "expires_at": "UTC. Empty = never expires.",
        }

    def clean_allowed_models(self) -> list[str]:
        models = self.cleaned_data.get("allowed_models") or []
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise forms.ValidationError('A JSON list of model ids, e.g. ["openai/gpt-4o-mini"].')
        return models

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for limit in ("rpm", "rpd"):
            if data.get(limit) == 0:
                self.add_error(limit, "Leave empty for no limit; a limit is at least 1.")
        if self.ceilings is not None:
            self._check_ceilings(data, self.ceilings)
        return data

    def _check_ceilings(self, data: dict[str, Any], tenant: Tenant) -> None:
        """A tenant admin's key stays within the operator's ceilings (empty would mean unlimited)."""
        bounds = {
            "rpm": tenant.key_rpm_ceiling,
            "rpd": tenant.key_rpd_ceiling,
            "spend_cap_usd": tenant.key_spend_cap_ceiling_usd,
        }
        for field, ceiling in bounds.items():
            value = data.get(field)
            if ceiling is None or field in self.errors:
                continue
            if value is None:
                self.add_error(field, f"Required: your platform operator set a ceiling of {ceiling:,}.")
            elif value > ceiling:
                self.add_error(field, f"At most {ceiling:,} (the ceiling your platform operator set).")


def key_status(api_key: ApiKey) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    if not api_key.is_active:
        return "inactive"
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        return "expired"
    return "active"


class RotateForm(forms.Form):
    grace_minutes = forms.IntegerField(
        min_value=0,
        initial=0,
        help_text="How long the old key keeps working (0 = revoked at once).",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin):
    form = ApiKeyForm
    list_display = [
        "name", "prefix", "tenant", "status", "expires_at", "rpm", "rpd", "spend_cap_usd", "hard_cap",
        "last_used_at",
    ]  # fmt: skip
    search_fields = ["name", "prefix"]
    actions = ["revoke", "rotate"]

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return key_status(obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        tenant = admin_tenant_of(request)
        return type(form.__name__, (form,), {"ceilings": tenant}) if tenant is not None else form

    def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
        # A tenant filter would list every tenant's name to a tenant admin.
        return ("tenant", "is_active") if request.user.is_superuser else ("is_active",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["tenant", "prefix", "revoked_at", "last_used_at", "created_at"]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # On creation the token fields do not exist yet; revoking is an action, not a field.
        return ["key_hash"] if obj is not None else ["key_hash", "prefix", "revoked_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        assert isinstance(obj, ApiKey)
        tenant = admin_tenant_of(request)
        if tenant is not None:
            obj.tenant_id = tenant.pk  # a tenant admin only ever creates keys for their own tenant
        if change:
            api_key_save(api_key=obj)
            return
        request.mesh_created_keys = [api_key_issue(api_key=obj)]  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The one page that ever shows the key; the plaintext lives only in this response."""
        return self._created_page(request, request.mesh_created_keys, "API key created")  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        api_key_delete(api_key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_delete(api_key=api_key)

    @admin.action(description="Revoke selected keys (403 from the next request on)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(queryset)} key(s).", messages.SUCCESS)

    @admin.action(description="Rotate selected keys (new key; old one revoked now or after a grace period)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse:
        form = RotateForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            grace_seconds = form.cleaned_data["grace_minutes"] * 60
            created = [api_key_rotate(api_key=k, grace_seconds=grace_seconds) for k in queryset]
            return self._created_page(request, created, f"Rotated {len(created)} key(s)")
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate API keys",
            "opts": self.model._meta,
            "keys": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, ROTATE_TEMPLATE, context)

    def _created_page(self, request: HttpRequest, created: list[CreatedKey], title: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "api_url": request.build_absolute_uri("/v1").rstrip("/"),
        }
        response = TemplateResponse(request, CREATED_TEMPLATE, {**context, "created": created})
        response["Cache-Control"] = "no-store"
        return response
