"""Provider adapters by name, configured from settings.PROVIDERS (keys and base URLs from env)."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from routing.providers.base import ProviderAdapter
from routing.providers.openai_compat import OpenAICompatibleAdapter, OpenRouterAdapter

ADAPTER_CLASSES: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAICompatibleAdapter,
    "openrouter": OpenRouterAdapter,
}


@cache
def provider_get(name: str) -> ProviderAdapter | None:
    """The adapter for `name`, or None when Mesh has no adapter for it yet."""
    adapter_class = ADAPTER_CLASSES.get(name)
    config = settings.PROVIDERS.get(name)
    if adapter_class is None or config is None:
        return None
    return adapter_class(name=name, api_key=config["api_key"], base_url=config["base_url"])


def provider_is_configured(name: str) -> bool:
    adapter = provider_get(name)
    return adapter is not None and adapter.configured
