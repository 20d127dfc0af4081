"""Admin for the model catalog: edits take effect on every worker within a second."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from routing.catalog import catalog_changed
from routing.models import CatalogModel


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "model_id",
        "provider",
        "upstream_name",
        "input_per_mtok_usd",
        "output_per_mtok_usd",
        "cached_input_per_mtok_usd",
        "context_window",
        "enabled",
    ]
    list_filter = ["provider", "enabled"]
    search_fields = ["model_id", "upstream_name"]
    list_editable = ["enabled"]

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        catalog_changed()

    def delete_model(self, request: HttpRequest, obj: CatalogModel) -> None:
        super().delete_model(request, obj)
        catalog_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CatalogModel]) -> None:
        super().delete_queryset(request, queryset)
        catalog_changed()
