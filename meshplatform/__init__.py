"""The Mesh platform project: settings, ASGI entry, Celery app, error envelope, middleware."""

from __future__ import annotations

from meshplatform.celery import app as celery_app

__all__ = ["celery_app"]
