"""Provider adapters by name, configured from settings.PROVIDERS (keys and base URLs from env)."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from routing.providers.anthropic import AnthropicAdapter
from routing.providers.azure import AzureOpenAIAdapter
from routing.providers.base import ProviderAdapter
from routing.providers.gemini import GeminiAdapter
from routing.providers.openai_compat import OpenAICompatibleAdapter, OpenRouterAdapter

ADAPTER_CLASSES: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAICompatibleAdapter,
    "openrouter": OpenRouterAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "azure": AzureOpenAIAdapter,
}


@cache
def provider_get(name: str) -> ProviderAdapter | None:
    """The adapter for `name`, or None when Mesh has no adapter for it."""
    adapter_class = ADAPTER_CLASSES.get(name)
    config = settings.PROVIDERS.get(name)
    if adapter_class is None or config is None:
        return None
    options = {k: v for k, v in config.items() if k not in ("api_key", "base_url")}
    return adapter_class(name=name, api_key=config["api_key"], base_url=config["base_url"], options=options)


def provider_is_configured(name: str) -> bool:
    adapter = provider_get(name)
    return adapter is not None and adapter.configured


def providers_configured() -> list[str]:
    """The names of the providers this deployment can call (for /readyz and the start-up line)."""
    return [name for name in ADAPTER_CLASSES if provider_is_configured(name)]
