"""App config for prompt templates."""

from __future__ import annotations

from django.apps import AppConfig


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Prompt templates"
