"""App config for the project package: keeps the proxy path thread-free (see meshplatform.framework)."""

from __future__ import annotations

from django.apps import AppConfig


class MeshplatformConfig(AppConfig):
    name = "meshplatform"
    verbose_name = "Mesh platform"

    def ready(self) -> None:
        from meshplatform.framework import request_signals_disconnect

        request_signals_disconnect()
