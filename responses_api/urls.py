"""URLs of the Responses API (a trailing slash is accepted, as on the other /v1 endpoints)."""

from __future__ import annotations

from django.urls import re_path

from responses_api import views

urlpatterns = [
    re_path(r"^responses/?$", views.responses_create, name="responses-create"),
    re_path(
        r"^responses/(?P<response_id>[^/]+)/input_items/?$",
        views.response_input_items,
        name="responses-input-items",
    ),
    re_path(r"^responses/(?P<response_id>[^/]+)/?$", views.response_detail, name="responses-detail"),
]
