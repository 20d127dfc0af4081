"""Celery tasks of the usage app."""

from __future__ import annotations

from usage.spend_rebuild import spend_counters_rebuild_task  # noqa: F401
