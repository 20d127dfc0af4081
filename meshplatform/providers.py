"""Which upstream providers this deployment has credentials for (from settings.PROVIDERS)."""

from __future__ import annotations

from django.conf import settings


def providers_configured() -> list[str]:
    """Names of the providers with an API key and a base URL, in settings order (for /readyz and
    the start-up line; routing's adapters apply the same rule)."""
    return [
        name
        for name, config in settings.PROVIDERS.items()
        if config.get("api_key") and config.get("base_url")
    ]
