"""App config for tenants and API keys."""

from __future__ import annotations

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Tenants and API keys"
