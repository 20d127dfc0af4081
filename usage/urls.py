"""URLs of the usage API, mounted under /v1/ (so /v1/usage)."""

from __future__ import annotations

from django.urls import re_path

from usage.api import UsageView

urlpatterns = [re_path(r"^usage/?$", UsageView.as_view(), name="usage-report")]
