"""The admin's compare page: a tenant's template or typed messages run on several models side by
side (answers, latency, tokens and cost), billed to one of the tenant's keys the admin picks.

Tenant admins see and bill only their own tenant (its keys and templates are the only choices);
platform operators pick the tenant first. Each run is an ordinary comparison through
`routing.compare.service`: the picked key's rate limits and spend caps apply, and every model's
run is a usage event of that key under the comparison id, with the session id
`admin-compare:<username>` so finance can tell the admin's runs from the key's API traffic.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from keys.admin_scoping import admin_is_operator, admin_tenant_of
from keys.models import ApiKey, Tenant
from keys.selectors import resolved_key_from_model
from meshplatform.errors import GatewayError
from meshplatform.request_ids import new_request_id
from routing.compare.request import compare_request_validate
from routing.compare.service import CompareObject, compare_start, comparison_run
from routing.models import CatalogModel, ModelComparison, ModelKind
from routing.providers.registry import provider_is_configured
from templates_app.models import PromptTemplate

MAX_TOKENS_LIMIT = 100_000
MAX_PROMPT_CHARS = 100_000


def compare_model_choices() -> list[tuple[str, str]]:
    """Enabled chat models whose provider is configured (the ones a comparison can run: an
    embedding or image model would only be refused)."""
    rows = CatalogModel.objects.filter(enabled=True, kind=ModelKind.CHAT).order_by("provider", "model_id")
    return [(row.model_id, row.model_id) for row in rows if provider_is_configured(row.provider)]


def tenant_keys(tenant: Tenant) -> QuerySet[ApiKey]:
    now = timezone.now()
    keys = ApiKey.objects.filter(tenant=tenant, is_active=True, revoked_at__isnull=True)
    return keys.exclude(expires_at__lte=now).order_by("name", "prefix")


class KeyChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.prefix}… {obj.name}".strip()


class CompareForm(forms.Form):
    """What to compare: a template (with its variables) or typed messages, the models, the key billed."""

    api_key = KeyChoice(queryset=ApiKey.objects.none(), label="Bill to key", empty_label=None)
    template = forms.ModelChoiceField(
        queryset=PromptTemplate.objects.none(), required=False, empty_label="(none: type the messages)"
    )
    variables = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "name=value, one per line"}),
        help_text="The template's {{slots}}, one `name=value` per line.",
        max_length=MAX_PROMPT_CHARS,
    )
    system = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="System message",
        max_length=MAX_PROMPT_CHARS,
    )
    prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="User message",
        max_length=MAX_PROMPT_CHARS,
    )
    models = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=MAX_TOKENS_LIMIT)

    def __init__(self, data: Any = None, *, tenant: Tenant) -> None:
        super().__init__(data)
        self.tenant = tenant
        key_field, template_field, models_field = (
            self.fields["api_key"],
            self.fields["template"],
            self.fields["models"],
        )
        assert isinstance(key_field, forms.ModelChoiceField) and isinstance(
            template_field, forms.ModelChoiceField
        )
        assert isinstance(models_field, forms.MultipleChoiceField)
        key_field.queryset = tenant_keys(tenant)
        template_field.queryset = PromptTemplate.objects.filter(tenant=tenant).order_by("name")
        models_field.choices = compare_model_choices()
        models_field.help_text = f"2 to {settings.MESH_COMPARE_MAX_MODELS} models."

    def clean_models(self) -> list[str]:
        models: list[str] = list(self.cleaned_data.get("models") or [])
        most = settings.MESH_COMPARE_MAX_MODELS
        if not 2 <= len(models) <= most:
            raise forms.ValidationError(f"Pick at least 2 and at most {most} models.")
        return models

    def clean_variables(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in str(self.cleaned_data.get("variables") or "").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Not a `name=value` line: {line[:60]!r}")
            values[name.strip()] = value
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("template") and not (cleaned.get("prompt") or "").strip():
            self.add_error("prompt", "Type a message, or pick a template.")
        return cleaned

    def compare_body(self, *, session_id: str) -> dict[str, Any]:
        """The POST /v1/compare body this form stands for."""
        data = self.cleaned_data
        messages = []
        if (data.get("system") or "").strip():
            messages.append({"role": "system", "content": data["system"]})
        if (data.get("prompt") or "").strip():
            messages.append({"role": "user", "content": data["prompt"]})
        body: dict[str, Any] = {
            "models": list(data["models"]),
            "messages": messages,
            "session_id": session_id,
        }
        if data.get("template") is not None:
            body["template"] = data["template"].name
            body["variables"] = data.get("variables") or {}
        if data.get("max_tokens"):
            body["max_tokens"] = data["max_tokens"]
        return body


def compare_for_admin(*, api_key: ApiKey, body: dict[str, Any]) -> CompareObject:
    """Run the comparison billed to `api_key` (a key of the admin's tenant), as the API would."""
    key = resolved_key_from_model(api_key)
    key.ensure_usable()

    async def run() -> CompareObject:
        comparison = await compare_start(
            key=key,
            key_hash=api_key.key_hash,
            request_id=new_request_id(),
            parse=lambda: compare_request_validate(body),
        )
        return await comparison_run(comparison)

    return async_to_sync(run)()


@admin.register(ModelComparison)
class ModelComparisonAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The page is the changelist: a form, and after a run, the answers side by side."""

    def _allowed(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff) and (
            admin_tenant_of(request) is not None or admin_is_operator(request)
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="routing_modelcomparison_changelist",
            )
        ]

    def _tenant(self, request: HttpRequest) -> tuple[Tenant | None, list[Tenant]]:
        """The tenant the page works for, and the tenants an operator may pick from (none for a
        tenant admin: their own tenant is the only one)."""
        own = admin_tenant_of(request)
        if own is not None:
            return own, []
        tenants = list(Tenant.objects.order_by("name"))
        wanted = request.POST.get("tenant") or request.GET.get("tenant") or ""
        chosen = next((t for t in tenants if str(t.pk) == wanted), None)
        return chosen, tenants

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self._allowed(request):
            raise PermissionDenied
        tenant, tenants = self._tenant(request)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Compare models",
            "opts": self.model._meta,
            "tenant": tenant,
            "tenants": tenants,
            "max_models": settings.MESH_COMPARE_MAX_MODELS,
        }
        if tenant is not None:
            form = CompareForm(request.POST if request.method == "POST" else None, tenant=tenant)
            context["form"] = form
            if request.method == "POST" and form.is_valid():
                user: Any = request.user
                body = form.compare_body(session_id=f"admin-compare:{user.get_username()}"[:256])
                try:
                    context["comparison"] = compare_for_admin(api_key=form.cleaned_data["api_key"], body=body)
                except GatewayError as error:
                    context["refusal"] = error
        return TemplateResponse(request, "admin/routing/compare.html", context)
