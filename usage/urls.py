"""URLs of the usage API, mounted under /v1/ (so /v1/usage)."""

from __future__ import annotations

from django.urls import path

from usage.api import UsageView

urlpatterns = [path("usage", UsageView.as_view(), name="usage-report")]
