"""The catalog a new deployment starts with: list prices in USD per million tokens (editable in admin)."""

from __future__ import annotations

from typing import NamedTuple


class SeedModel(NamedTuple):
    model_id: str
    input_per_mtok: str
    output_per_mtok: str
    cached_per_mtok: str | None
    context_window: int
    max_output_tokens: int | None


SEED_MODELS: tuple[SeedModel, ...] = (
    SeedModel("openai/gpt-4o", "2.50", "10.00", "1.25", 128_000, 16_384),
    SeedModel("openai/gpt-4o-mini", "0.15", "0.60", "0.075", 128_000, 16_384),
    SeedModel("openai/gpt-4.1", "2.00", "8.00", "0.50", 1_047_576, 32_768),
    SeedModel("openai/gpt-4.1-mini", "0.40", "1.60", "0.10", 1_047_576, 32_768),
    SeedModel("openai/gpt-4.1-nano", "0.10", "0.40", "0.025", 1_047_576, 32_768),
    SeedModel("openai/o3", "2.00", "8.00", "0.50", 200_000, 100_000),
    SeedModel("openai/o4-mini", "1.10", "4.40", "0.275", 200_000, 100_000),
    SeedModel("openai/gpt-5", "1.25", "10.00", "0.125", 400_000, 128_000),
    SeedModel("openai/gpt-5-mini", "0.25", "2.00", "0.025", 400_000, 128_000),
    SeedModel("openai/gpt-5-nano", "0.05", "0.40", "0.005", 400_000, 128_000),
    SeedModel("anthropic/claude-opus-4-1", "15.00", "75.00", "1.50", 200_000, 32_000),
    SeedModel("anthropic/claude-sonnet-4-5", "3.00", "15.00", "0.30", 200_000, 64_000),
    SeedModel("anthropic/claude-haiku-4-5", "1.00", "5.00", "0.10", 200_000, 64_000),
    SeedModel("anthropic/claude-3-5-haiku-latest", "0.80", "4.00", "0.08", 200_000, 8_192),
    SeedModel("gemini/gemini-2.5-pro", "1.25", "10.00", "0.31", 1_048_576, 65_536),
    SeedModel("gemini/gemini-2.5-flash", "0.30", "2.50", "0.075", 1_048_576, 65_536),
    SeedModel("gemini/gemini-2.5-flash-lite", "0.10", "0.40", "0.025", 1_048_576, 65_536),
    SeedModel("gemini/gemini-2.0-flash", "0.10", "0.40", "0.025", 1_048_576, 8_192),
    SeedModel("openrouter/meta-llama/llama-3.3-70b-instruct", "0.13", "0.40", None, 131_072, None),
    SeedModel("openrouter/deepseek/deepseek-chat-v3.1", "0.27", "1.10", None, 163_840, None),
    SeedModel("openrouter/mistralai/mistral-large", "2.00", "6.00", None, 131_072, None),
    SeedModel("openrouter/qwen/qwen-2.5-72b-instruct", "0.12", "0.39", None, 32_768, None),
)
