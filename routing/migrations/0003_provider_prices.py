"""Cache-write prices and the reasoning flag; Azure as a provider; the current models seeded."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

from routing.catalog_seed import SEED_MODELS, seed_defaults


def seed(apps: Any, schema_editor: Any) -> None:
    """New seed models are created; seeded rows gain the new fields (prices an operator edited stay)."""
    CatalogModel = apps.get_model("routing", "CatalogModel")
    for model in SEED_MODELS:
        defaults = seed_defaults(model)
        row, created = CatalogModel.objects.get_or_create(model_id=model.model_id, defaults=defaults)
        if not created and row.cache_write_per_mtok_usd is None:
            row.cache_write_per_mtok_usd = defaults["cache_write_per_mtok_usd"]
            row.reasoning = defaults["reasoning"]
            row.save(update_fields=["cache_write_per_mtok_usd", "reasoning"])


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_seed_catalog")]
    operations = [
        migrations.AddField(
            model_name="catalogmodel",
            name="cache_write_per_mtok_usd",
            field=models.DecimalField(
                blank=True,
                decimal_places=6,
                help_text="Prompt-cache writes (Anthropic bills them above input). Empty = input price.",
                max_digits=12,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="catalogmodel",
            name="reasoning",
            field=models.BooleanField(
                default=False, help_text="The model can think: reasoning_effort becomes its thinking budget."
            ),
        ),
        migrations.AlterField(
            model_name="catalogmodel",
            name="provider",
            field=models.CharField(
                choices=[
                    ("openai", "OpenAI"),
                    ("openrouter", "OpenRouter"),
                    ("anthropic", "Anthropic"),
                    ("gemini", "Google Gemini"),
                    ("azure", "Azure OpenAI"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
