"""App config for the project package: signal wiring that keeps the proxy path thread-free."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import signals
from django.db import close_old_connections


class MeshplatformConfig(AppConfig):
    name = "meshplatform"
    verbose_name = "Mesh platform"

    def ready(self) -> None:
        # A sync receiver on request_started/finished costs every ASGI request a thread
        # hop. Connection hygiene is done where the database is used instead: by
        # BrowserMiddleware for admin pages and by meshplatform.db.db_call on the API path.
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
