"""Django app config of async jobs, Files and Batches."""

from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Async jobs, files and batches"
    default_auto_field = "django.db.models.BigAutoField"
