"""GET /v1/models and /v1/models/{id}: the catalog of configured providers, with prices."""

from __future__ import annotations

from meshapi.types._base import Response


class ModelPricing(Response):
    """USD per million tokens, as decimal strings (exact)."""

    input_per_mtok_usd: str | None = None
    output_per_mtok_usd: str | None = None
    cached_input_per_mtok_usd: str | None = None


class Model(Response):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""
    context_window: int | None = None
    pricing: ModelPricing | None = None
    alias_for: str | None = None
    """Set when `id` is one of your tenant's aliases: the catalog id it stands for."""
    kind: str = "chat"
    """The endpoint it serves: `chat`, `embedding` (`client.embeddings`) or `image` (`client.images`)."""
    dimensions: int | None = None
    """Embedding models: the length of the vectors they return by default."""
