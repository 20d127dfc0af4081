"""Seed the catalog with current list prices (later edits happen in admin)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import migrations

from routing.catalog_seed import SEED_MODELS


def seed(apps: Any, schema_editor: Any) -> None:
    CatalogModel = apps.get_model("routing", "CatalogModel")
    for model in SEED_MODELS:
        provider, _, upstream_name = model.model_id.partition("/")
        CatalogModel.objects.get_or_create(
            model_id=model.model_id,
            defaults={
                "provider": provider,
                "upstream_name": upstream_name,
                "input_per_mtok_usd": Decimal(model.input_per_mtok),
                "output_per_mtok_usd": Decimal(model.output_per_mtok),
                "cached_input_per_mtok_usd": Decimal(model.cached_per_mtok) if model.cached_per_mtok else None,
                "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
