"""URLs of the template API, mounted under /v1/ (so /v1/templates, /v1/templates/{name-or-uuid}…)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from templates_app.views import TemplateViewSet

router = SimpleRouter(trailing_slash=False)
router.register("templates", TemplateViewSet, basename="template")

urlpatterns = router.urls
