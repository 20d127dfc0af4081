"""The catalog a new deployment starts with: list prices in USD per million tokens (editable in admin).

Prices are the providers' public list prices for standard (non-batch) use, prompts up to 200K
tokens; Anthropic's cache writes are the 5-minute TTL price (1.25 × input). Azure entries assume a
deployment named after its model (rename `upstream_name` in admin to match yours).
"""

from __future__ import annotations

from typing import NamedTuple


class SeedModel(NamedTuple):
    model_id: str
    input_per_mtok: str
    output_per_mtok: str
    cached_per_mtok: str | None
    context_window: int
    max_output_tokens: int | None
    cache_write_per_mtok: str | None = None
    reasoning: bool = False
    kind: str = "chat"
    dimensions: int | None = None  # embedding models: the default vector length
    image_prices: dict[str, dict[str, str]] | None = None  # image models: quality → size → USD per image


def _embedding(model_id: str, input_per_mtok: str, context_window: int, dimensions: int) -> SeedModel:
    return SeedModel(
        model_id, input_per_mtok, "0", None, context_window, None, kind="embedding", dimensions=dimensions
    )


# Embeddings: input tokens only (no output price); `dimensions` is the default vector length.
EMBEDDING_MODELS = (
    _embedding("openai/text-embedding-3-small", "0.02", 8_191, 1536),
    _embedding("openai/text-embedding-3-large", "0.13", 8_191, 3072),
    _embedding("openai/text-embedding-ada-002", "0.10", 8_191, 1536),
    _embedding("azure/text-embedding-3-small", "0.02", 8_191, 1536),
    _embedding("gemini/gemini-embedding-001", "0.15", 2_048, 3072),
    _embedding("gemini/text-embedding-004", "0.00", 2_048, 768),
)
_DALL_E_3 = {
    "standard": {"1024x1024": "0.040", "1024x1792": "0.080", "1792x1024": "0.080"},
    "hd": {"1024x1024": "0.080", "1024x1792": "0.120", "1792x1024": "0.120"},
}
# Images: USD per image by quality and size (OpenAI's list prices).
IMAGE_MODELS = (
    SeedModel("openai/dall-e-3", "0", "0", None, 4_000, None, kind="image", image_prices=_DALL_E_3),
    SeedModel(
        "openai/dall-e-2", "0", "0", None, 1_000, None, kind="image",
        image_prices={"standard": {"1024x1024": "0.020", "512x512": "0.018", "256x256": "0.016"}},
    ),
    SeedModel(
        "openai/gpt-image-1", "0", "0", None, 32_000, None, kind="image",
        image_prices={
            "medium": {"1024x1024": "0.042", "1024x1536": "0.063", "1536x1024": "0.063"},
            "low": {"1024x1024": "0.011", "1024x1536": "0.016", "1536x1024": "0.016"},
            "high": {"1024x1024": "0.167", "1024x1536": "0.250", "1536x1024": "0.250"},
        },
    ),
    SeedModel("azure/dall-e-3", "0", "0", None, 4_000, None, kind="image", image_prices=_DALL_E_3),
)  # fmt: skip

SEED_MODELS: tuple[SeedModel, ...] = (
    SeedModel("openai/gpt-4o", "2.50", "10.00", "1.25", 128_000, 16_384),
    SeedModel("openai/gpt-4o-mini", "0.15", "0.60", "0.075", 128_000, 16_384),
    SeedModel("openai/gpt-4.1", "2.00", "8.00", "0.50", 1_047_576, 32_768),
    SeedModel("openai/gpt-4.1-mini", "0.40", "1.60", "0.10", 1_047_576, 32_768),
    SeedModel("openai/gpt-4.1-nano", "0.10", "0.40", "0.025", 1_047_576, 32_768),
    SeedModel("openai/o3", "2.00", "8.00", "0.50", 200_000, 100_000, reasoning=True),
    SeedModel("openai/o4-mini", "1.10", "4.40", "0.275", 200_000, 100_000, reasoning=True),
    SeedModel("openai/gpt-5", "1.25", "10.00", "0.125", 400_000, 128_000, reasoning=True),
    SeedModel("openai/gpt-5-mini", "0.25", "2.00", "0.025", 400_000, 128_000, reasoning=True),
    SeedModel("openai/gpt-5-nano", "0.05", "0.40", "0.005", 400_000, 128_000, reasoning=True),
    SeedModel("anthropic/claude-opus-4-5", "5.00", "25.00", "0.50", 200_000, 64_000, "6.25", True),
    SeedModel("anthropic/claude-opus-4-1", "15.00", "75.00", "1.50", 200_000, 32_000, "18.75", True),
    SeedModel("anthropic/claude-sonnet-4-5", "3.00", "15.00", "0.30", 200_000, 64_000, "3.75", True),
    SeedModel("anthropic/claude-sonnet-4", "3.00", "15.00", "0.30", 200_000, 64_000, "3.75", True),
    SeedModel("anthropic/claude-haiku-4-5", "1.00", "5.00", "0.10", 200_000, 64_000, "1.25", True),
    SeedModel("anthropic/claude-3-5-haiku-latest", "0.80", "4.00", "0.08", 200_000, 8_192, "1.00"),
    SeedModel("gemini/gemini-3-pro-preview", "2.00", "12.00", "0.20", 1_048_576, 65_536, None, True),
    SeedModel("gemini/gemini-2.5-pro", "1.25", "10.00", "0.125", 1_048_576, 65_536, None, True),
    SeedModel("gemini/gemini-2.5-flash", "0.30", "2.50", "0.03", 1_048_576, 65_536, None, True),
    SeedModel("gemini/gemini-2.5-flash-lite", "0.10", "0.40", "0.01", 1_048_576, 65_536, None, True),
    SeedModel("gemini/gemini-2.0-flash", "0.10", "0.40", "0.025", 1_048_576, 8_192),
    SeedModel("azure/gpt-4o", "2.50", "10.00", "1.25", 128_000, 16_384),
    SeedModel("azure/gpt-4o-mini", "0.15", "0.60", "0.075", 128_000, 16_384),
    SeedModel("azure/gpt-4.1", "2.00", "8.00", "0.50", 1_047_576, 32_768),
    SeedModel("azure/gpt-4.1-mini", "0.40", "1.60", "0.10", 1_047_576, 32_768),
    SeedModel("openrouter/meta-llama/llama-3.3-70b-instruct", "0.13", "0.40", None, 131_072, None),
    SeedModel("openrouter/deepseek/deepseek-chat-v3.1", "0.27", "1.10", None, 163_840, None),
    SeedModel("openrouter/mistralai/mistral-large", "2.00", "6.00", None, 131_072, None),
    SeedModel("openrouter/qwen/qwen-2.5-72b-instruct", "0.12", "0.39", None, 32_768, None),
    *EMBEDDING_MODELS,
    *IMAGE_MODELS,
)


def seed_defaults(seed: SeedModel) -> dict[str, object]:
    """The catalog row's fields for a seed (prices as Decimals)."""
    from decimal import Decimal

    provider, _, upstream_name = seed.model_id.partition("/")
    return {
        "provider": provider,
        "upstream_name": upstream_name,
        "input_per_mtok_usd": Decimal(seed.input_per_mtok),
        "output_per_mtok_usd": Decimal(seed.output_per_mtok),
        "cached_input_per_mtok_usd": Decimal(seed.cached_per_mtok) if seed.cached_per_mtok else None,
        "cache_write_per_mtok_usd": Decimal(seed.cache_write_per_mtok) if seed.cache_write_per_mtok else None,
        "context_window": seed.context_window,
        "max_output_tokens": seed.max_output_tokens,
        "reasoning": seed.reasoning,
        "kind": seed.kind,
        "dimensions": seed.dimensions,
        "image_prices": seed.image_prices or {},
    }
