"""Liveness and readiness probes."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from meshplatform.db import db_call
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


async def readyz(request: HttpRequest) -> HttpResponse:
    """Says what is down. Without PostgreSQL nothing is served: 503. Without Redis the gateway
    still serves when limits fail open (MESH_LIMITS_FAIL_OPEN), so it reports "degraded" with 200:
    a load balancer must not pull every instance for a shared Redis outage it cannot fix. It also
    names the providers this instance can call."""
    checks = {"database": await _database_ok(), "redis": await _redis_ok()}
    if all(checks.values()):
        status, code = "ok", 200
    elif checks["database"] and settings.MESH_LIMITS_FAIL_OPEN:
        status, code = "degraded", 200
    else:
        status, code = "unavailable", 503
    body = {"status": status, "checks": checks, "providers": providers_configured()}
    return HttpResponse(orjson.dumps(body), status=code, content_type="application/json")
