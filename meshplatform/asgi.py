"""ASGI entry point: `meshplatform.asgi:application`."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.dev")
django.setup(set_prefix=False)

from meshplatform.asgi_handler import MeshASGIHandler  # noqa: E402

application = MeshASGIHandler()
