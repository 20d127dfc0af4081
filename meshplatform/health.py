"""Liveness and readiness probes."""

from __future__ import annotations

import orjson
from django.db import connection
from django.http import HttpRequest, HttpResponse

from meshplatform.db import db_call
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
    """Ready when PostgreSQL and Redis both answer; 503 names what is down."""
    checks = {"database": await _database_ok(), "redis": await _redis_ok()}
    ready = all(checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return HttpResponse(orjson.dumps(body), status=200 if ready else 503, content_type="application/json")
