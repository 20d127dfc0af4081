"""App config for the project package: signal wiring that keeps the proxy path thread-free."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import signals
from django.db import close_old_connections, reset_queries


class MeshplatformConfig(AppConfig):
    name = "meshplatform"
    verbose_name = "Mesh platform"

    def ready(self) -> None:
        # A sync receiver on request_started costs every ASGI request a new thread (asend
        # runs sync receivers through sync_to_async in the request's thread-sensitive
        # context), and on request_finished a database round trip in the loop. Connection
        # hygiene is done where the database is used instead: by RequestScopeMiddleware for admin
        # pages and by meshplatform.db.db_call on the API path.
        signals.request_started.disconnect(reset_queries)
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
