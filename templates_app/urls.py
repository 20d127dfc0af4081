"""URLs of the template API, mounted under /v1/ (so /v1/templates, /v1/templates/{name-or-uuid}…)."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from templates_app.views import TemplateViewSet


class OptionalSlashRouter(SimpleRouter):
    """Routes with or without the trailing slash some clients add."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("templates", TemplateViewSet, basename="template")

urlpatterns = router.urls
