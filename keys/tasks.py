"""Celery tasks of the keys app (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from keys.last_used import api_keys_flush_last_used


@shared_task(name="keys.flush_last_used", ignore_result=True)
def flush_last_used() -> int:
    return api_keys_flush_last_used()
