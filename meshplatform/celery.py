"""The Celery application; tasks live in each app's `tasks.py`."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.dev")

app = Celery("meshplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _database_connections_tidy(**kwargs: Any) -> None:
    """Persistent, health-checked PostgreSQL connections in the worker.

    Celery's Django fixup closes every connection around each task, and under the prefork pool
    closes psycopg's pool with them: a new PostgreSQL session per task (the 1 s flush opened
    1,355 in 48 minutes). CELERY_DB_REUSE_MAX (settings) turns that off; instead, around each
    task, a connection that errored or outlived CONN_MAX_AGE goes back to the pool, which keeps
    it open and checks it (CONN_HEALTH_CHECKS) before the next task gets it.
    """
    from django.db import close_old_connections

    close_old_connections()


task_prerun.connect(_database_connections_tidy, weak=False)
task_postrun.connect(_database_connections_tidy, weak=False)


def _tracing_start(**kwargs: Any) -> None:
    """Traces of tasks (jobs, batches, the ledger flusher) when MESH_OTEL_ENABLED: set up before
    the pool starts, so prefork children inherit it."""
    from meshplatform.tracing import tracing_configure

    tracing_configure(service_name="mesh-worker")


worker_init.connect(_tracing_start, weak=False)
