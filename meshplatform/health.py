"""Liveness and readiness probes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from meshplatform.db import db_call
from meshplatform.draining import worker_draining
from meshplatform.providers import providers_configured
from meshplatform.redis import get_redis


async def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and serving; says nothing about its dependencies."""
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


@db_call
def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # any driver error means "not ready"; the probe must answer, not raise
        return False


async def _redis_ok() -> bool:
    try:
        return bool(await get_redis().ping())
    except Exception:  # connection refused, timeout, auth: all mean "not ready"
        return False


_DRAINING = orjson.dumps(
    {
        "status": "draining",
        "detail": "This worker is shutting down: it finishes the requests it holds and takes no new ones.",
    }
)

Probe = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


async def _app_probes() -> tuple[dict[str, bool], dict[str, Any]]:
    """The apps' own probes (settings.MESH_READINESS_PROBES, "name": "dotted.path"): each says
    whether its part is healthy and gives its figures. This module imports no app."""
    checks: dict[str, bool] = {}
    figures: dict[str, Any] = {}
    for name, path in settings.MESH_READINESS_PROBES.items():
        probe: Probe = import_string(path)
        try:
            checks[name], figures[name] = await probe()
        except Exception:  # its store is unreachable: the redis/database check already says so
            checks[name] = False
    return checks, figures


async def readyz(request: HttpRequest) -> HttpResponse:
    """Says what is down. Without PostgreSQL nothing is served: 503. Without Redis the gateway
    still serves when limits fail open (MESH_LIMITS_FAIL_OPEN), so it reports "degraded" with 200:
    a load balancer must not pull every instance for a shared Redis outage it cannot fix. A lagging
    usage ledger (events not reaching PostgreSQL) is "degraded" too: serving goes on, finance lags.
    It also names the providers this instance can call. A worker told to stop answers 503
    "draining" (meshplatform/draining.py) without checking anything: it wants no new requests."""
    if worker_draining():
        return HttpResponse(_DRAINING, status=503, content_type="application/json")
    checks = {"database": await _database_ok(), "redis": await _redis_ok()}
    app_checks, figures = await _app_probes() if checks["redis"] else ({}, {})
    if all(checks.values()) and all(app_checks.values()):
        status, code = "ok", 200
    elif checks["database"] and (checks["redis"] or settings.MESH_LIMITS_FAIL_OPEN):
        status, code = "degraded", 200
    else:
        status, code = "unavailable", 503
    body = {
        "status": status,
        "checks": {**checks, **app_checks},
        "providers": providers_configured(),
        **figures,
    }
    return HttpResponse(orjson.dumps(body), status=code, content_type="application/json")
