"""App config for the model catalog, provider adapters and the completions pipeline."""

from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing and model catalog"
