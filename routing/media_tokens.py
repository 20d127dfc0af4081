"""What one media part of a prompt can cost at most, in prompt tokens, per provider and model.

A part's bytes say little about its tokens: an `image_url` of 60 bytes can cost 1,445 tokens
(gpt-4o, high detail) or 48,169 (gpt-4o-mini, which bills images ~33x at its lower price). The
hard cap's worst case counts each part at these figures (catalog fields, editable in admin);
the catalog is seeded from this table. None means "no bound below the context window".
"""

from __future__ import annotations

from typing import NamedTuple


class MediaTokens(NamedTuple):
    image: int | None
    audio: int | None
    video: int | None
    file: int | None


# OpenAI: high-detail images are scaled within 2048x2048, then to 768 px on the short side: at most
# 8 tiles of 512 px (base + 8 x tile tokens); patch-based models cap at 1536 patches x their factor.
# Audio is billed ~10 tokens per second (a 20-minute clip: 12,000). Files (PDFs) and video have no
# bound short of the context window.
_OPENAI_IMAGE = {
    "openai/gpt-4o": 85 + 8 * 170,
    "openai/gpt-4o-mini": 2833 + 8 * 5667,
    "openai/gpt-4.1": 85 + 8 * 170,
    "openai/gpt-4.1-mini": int(1536 * 1.62) + 1,
    "openai/gpt-4.1-nano": int(1536 * 2.46) + 1,
    "openai/o3": 75 + 8 * 150,
    "openai/o4-mini": int(1536 * 1.72) + 1,
    "openai/gpt-5": 70 + 8 * 140,
    "openai/gpt-5-mini": int(1536 * 1.62) + 1,
    "openai/gpt-5-nano": int(1536 * 2.46) + 1,
}
PROVIDER_DEFAULTS: dict[str, MediaTokens] = {
    # An unlisted OpenAI model: the highest of the listed ones, not the cheapest guess.
    "openai": MediaTokens(image=max(_OPENAI_IMAGE.values()), audio=12_000, video=None, file=None),
    # Azure OpenAI deployments run OpenAI's models: the highest of them, the deployment name not saying which.
    "azure": MediaTokens(image=max(_OPENAI_IMAGE.values()), audio=12_000, video=None, file=None),
    # Anthropic resizes images to at most ~1.15 megapixels, ~(w x h) / 750: at most ~1,600 tokens.
    "anthropic": MediaTokens(image=1_600, audio=None, video=None, file=None),
    # Gemini: 258 tokens per 768 px tile (up to 3072 px: 16 tiles); audio 32 tokens a second (an hour:
    # 115,200); video ~263 a second, so only the context window bounds it.
    "gemini": MediaTokens(image=16 * 258, audio=115_200, video=None, file=None),
    # OpenRouter routes to any of them: the most expensive image of the above.
    "openrouter": MediaTokens(image=max(_OPENAI_IMAGE.values()), audio=115_200, video=None, file=None),
}
NO_BOUND = MediaTokens(image=None, audio=None, video=None, file=None)


def media_tokens_default(model_id: str) -> MediaTokens:
    """The seed figures for a catalog model (its provider's, with OpenAI's per-model images)."""
    provider, _, name = model_id.partition("/")
    defaults = PROVIDER_DEFAULTS.get(provider, NO_BOUND)
    openai_model = f"openai/{name}" if provider == "azure" else model_id  # Azure deploys OpenAI's models
    if openai_model in _OPENAI_IMAGE:
        return defaults._replace(image=_OPENAI_IMAGE[openai_model])
    return defaults
