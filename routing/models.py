"""The model catalog: which `provider/name` ids exist, where they go and what they cost."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    OPENROUTER = "openrouter", "OpenRouter"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    AZURE = "azure", "Azure OpenAI"


class ModelKind(models.TextChoices):
    """Which endpoint a catalog model serves: each answers only its own (a 400 otherwise)."""

    CHAT = "chat", "Chat completions"
    EMBEDDING = "embedding", "Embeddings"
    IMAGE = "image", "Image generation"


def image_prices_validate(value: Any) -> None:
    """`{quality: {size: "USD per image"}}`, every price a non-negative decimal string."""
    if not isinstance(value, dict):
        raise ValidationError("Image prices are an object of qualities.")
    for quality, sizes in value.items():
        if not isinstance(sizes, dict) or not sizes:
            raise ValidationError(f"Quality {quality!r} needs an object of sizes to prices.")
        for size, price in sizes.items():
            try:
                ok = isinstance(price, str) and Decimal(price) >= 0
            except InvalidOperation:
                ok = False
            if not ok:
                raise ValidationError(
                    f'The price of {quality!r} {size!r} must be a decimal string, e.g. "0.04".'
                )


class CatalogModel(models.Model):
    model_id = models.CharField(
        max_length=200, unique=True, help_text="What clients send, e.g. openai/gpt-4o."
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    upstream_name = models.CharField(max_length=200, help_text="The model name the provider expects.")
    input_per_mtok_usd = models.DecimalField(max_digits=12, decimal_places=6)
    output_per_mtok_usd = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_mtok_usd = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Empty = input price."
    )
    cache_write_per_mtok_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Prompt-cache writes (Anthropic bills them above input). Empty = input price.",
    )
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning = models.BooleanField(
        default=False, help_text="The model can think: reasoning_effort becomes its thinking budget."
    )
    # The most prompt tokens one content part of each kind can cost (the hard cap's worst case counts
    # each part at this, whatever its bytes); empty = no bound below the context window.
    image_part_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens one image part costs; empty = the context window."
    )
    audio_part_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens one audio part costs; empty = the context window."
    )
    video_part_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens one video part costs; empty = the context window."
    )
    file_part_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tokens one file part costs; empty = the context window."
    )
    kind = models.CharField(
        max_length=12, choices=ModelKind.choices, default=ModelKind.CHAT, db_default=ModelKind.CHAT
    )
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Embedding models: the vector length the model returns by default."
    )
    image_prices = models.JSONField(
        default=dict,
        blank=True,
        validators=[image_prices_validate],
        help_text="Image models: USD per image by quality and size, e.g. "
        '{"standard": {"1024x1024": "0.04"}}; unasked, 1024x1024 and standard, else the dearest listed.',
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model_id"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return self.model_id


class ModelAlias(models.Model):
    """A tenant's own name for a catalog model (`fast` → `openai/gpt-4o-mini`), resolved on the
    hot path from the catalog cache (see routing.catalog)."""

    tenant = models.ForeignKey("keys.Tenant", on_delete=models.CASCADE, related_name="model_aliases")
    alias = models.CharField(
        max_length=200, help_text="What this tenant's clients send as `model`, e.g. fast."
    )
    target = models.ForeignKey(
        CatalogModel,
        on_delete=models.CASCADE,
        related_name="aliases",
        help_text="The catalog model it names.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "alias"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "alias"], name="model_alias_unique_per_tenant")
        ]
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.target_id}"


class ModelComparison(CatalogModel):
    """The admin's compare page (a proxy: it gives the page an admin entry; routing.compare.admin)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = verbose_name_plural = "model comparison"
