"""Root URLs: the API under /v1/, the admin, health probes."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from meshplatform import health, metrics
from meshplatform.handlers import api_not_found, api_unknown_path, server_error

urlpatterns = [
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("v1/", include("routing.urls")),
    path("v1/", include("templates_app.urls")),
    path("v1/", include("usage.urls")),
    path("v1/", include("jobs.urls")),
    path("v1/", include("responses_api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # Last: any other /v1/ path is the envelope's 404, also under DEBUG (whose 404 page is HTML).
    re_path(r"^v1/", api_unknown_path),
]

handler404 = api_not_found
handler500 = server_error
