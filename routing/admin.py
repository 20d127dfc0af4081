"""Admin for the model catalog and tenants' model aliases: edits take effect on every worker
within a second (MESH_CATALOG_CHECK_INTERVAL_S)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from keys.admin_scoping import TenantScopedAdminMixin
from routing.catalog import catalog_changed
from routing.catalog_services import catalog_model_delete, catalog_model_save
from routing.models import CatalogModel, ModelAlias, Provider
from routing.providers.registry import provider_is_configured
from usage.money import usd_rate


def _per_million(value: Decimal | None) -> str:
    return usd_rate(value) if value is not None else "—"


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Prices are USD per million tokens; the changelist says which providers have an API key now."""

    list_display = [
        "model_id", "provider", "configured", "input_price", "output_price", "cached_price", "context_window",
        "enabled",
    ]  # fmt: skip
    list_filter = ["provider", "kind", "enabled"]
    search_fields = ["model_id", "upstream_name"]  # also the key form's model search
    list_editable = ["enabled"]
    fieldsets = [
        (None, {"fields": ["model_id", "provider", "upstream_name", "enabled"]}),
        (
            "Prices (USD per million tokens)",
            {
                "fields": [
                    "input_per_mtok_usd",
                    "output_per_mtok_usd",
                    "cached_input_per_mtok_usd",
                    "cache_write_per_mtok_usd",
                ]
            },
        ),
        ("Limits", {"fields": ["context_window", "max_output_tokens", "reasoning"]}),
        ("Embeddings and images", {"fields": ["kind", "dimensions", "image_prices"]}),
    ]

    @admin.display(description="configured", boolean=True)
    def configured(self, obj: CatalogModel) -> bool:
        return provider_is_configured(obj.provider)

    @admin.display(description="input $/1M tok", ordering="input_per_mtok_usd")
    def input_price(self, obj: CatalogModel) -> str:
        return _per_million(obj.input_per_mtok_usd)

    @admin.display(description="output $/1M tok", ordering="output_per_mtok_usd")
    def output_price(self, obj: CatalogModel) -> str:
        return _per_million(obj.output_per_mtok_usd)

    @admin.display(description="cached $/1M tok")
    def cached_price(self, obj: CatalogModel) -> str:
        if obj.cached_input_per_mtok_usd is None:
            return "= input"
        return _per_million(obj.cached_input_per_mtok_usd)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        providers = [(label, provider_is_configured(value)) for value, label in Provider.choices]
        return super().changelist_view(request, {**(extra_context or {}), "providers": providers})

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name.endswith("_per_mtok_usd") and field is not None:
            field.help_text = "USD per 1,000,000 tokens" + (
                ", empty = the input price" if db_field.null else ""
            )
        return field

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: Any, change: bool) -> None:
        catalog_model_save(model=obj)

    def delete_model(self, request: HttpRequest, obj: CatalogModel) -> None:
        catalog_model_delete(model=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CatalogModel]) -> None:
        for model in queryset:
            catalog_model_delete(model=model)


class ModelAliasForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ModelAlias
        fields = ["tenant", "alias", "target"]

    def clean_alias(self) -> str:
        alias: str = self.cleaned_data["alias"].strip()
        if not alias or any(c.isspace() for c in alias):
            raise forms.ValidationError("An alias is one word without spaces, e.g. fast.")
        if CatalogModel.objects.filter(model_id=alias).exists():
            raise forms.ValidationError(f"{alias} is already a catalog model id; an alias cannot hide it.")
        return alias


@admin.register(ModelAlias)
class ModelAliasAdmin(TenantScopedAdminMixin):
    """A tenant admin names catalog models for their tenant's clients (`fast` → openai/gpt-4o-mini);
    /v1/models lists them and completions resolve them from the catalog cache."""

    form = ModelAliasForm
    list_display = ["alias", "target", "tenant", "updated_at"]
    search_fields = ["alias", "target__model_id"]

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        return ["tenant"] if request.user.is_superuser else []  # other tenants' names stay hidden

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        catalog_changed()

    def delete_model(self, request: HttpRequest, obj: ModelAlias) -> None:
        super().delete_model(request, obj)
        catalog_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ModelAlias]) -> None:
        super().delete_queryset(request, queryset)
        catalog_changed()


from routing import admin_keys  # noqa: E402, F401  (the composed key and tenant pages)
from routing.compare import admin as compare_admin  # noqa: E402, F401  (the compare page)
