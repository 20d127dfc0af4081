"""The Responses API app: stored responses per tenant, translated to and from chat completions."""

from __future__ import annotations

from django.apps import AppConfig


class ResponsesApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "responses_api"
    verbose_name = "Responses API"
