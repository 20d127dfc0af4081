"""Helpers for the keys tests: the test Redis, per-worker pinned connections, admin sessions, the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psutil
import pytest
import redis
from django.conf import settings
from django.db.models import Sum

from keys.models import Tenant
from keys.spend import key_counter_name, tenant_counter_name
from keys.tokens import token_hash
from tests.support.gateway import GatewayServer
from tests.support.waiting import wait_until as wait_until  # re-exported for the keys tests
from usage.models import UsageEvent

# gpt-4o-mini's seed prices, USD per token.
MINI_INPUT = Decimal("0.15") / 1_000_000
MINI_OUTPUT = Decimal("0.60") / 1_000_000


@pytest.fixture
def test_redis() -> redis.Redis:
    """The test run's Redis database, the one the gateway under test uses."""
    return redis.Redis.from_url(settings.REDIS_URL)


def mini_cost(prompt_tokens: int, completion_tokens: int) -> Decimal:
    return prompt_tokens * MINI_INPUT + completion_tokens * MINI_OUTPUT


def nano(usd: Decimal) -> int:
    return int(usd * 1_000_000_000)


def ledger_flush() -> None:
    """Run the ledger's flush as beat would (events are written ahead to Redis, then flushed)."""
    import importlib

    from meshplatform.celery import app

    importlib.import_module("usage.tasks")
    task = app.tasks.get("usage.flush")
    if task is not None:
        task.apply()


def ledger_total(**filters: Any) -> Decimal:
    return UsageEvent.objects.filter(**filters).aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def wait_for_ledger(count: int, **filters: Any) -> Decimal:
    """Wait (bounded) until the ledger holds `count` rows matching `filters`; returns their cost."""

    def probe() -> bool:
        ledger_flush()
        return UsageEvent.objects.filter(**filters).count() >= count

    wait_until(probe, what=f"{count} ledger rows")
    return ledger_total(**filters)


def key_counter(test_redis: redis.Redis, tenant: Tenant, key_id: int, period: str = "monthly") -> int:
    from datetime import UTC, datetime

    raw = test_redis.get(key_counter_name(tenant.pk, key_id, period, datetime.now(UTC)))
    return int(raw or 0)


def tenant_counter(test_redis: redis.Redis, tenant: Tenant, period: str = "monthly") -> int:
    from datetime import UTC, datetime

    return int(test_redis.get(tenant_counter_name(tenant.pk, period, datetime.now(UTC))) or 0)


def cache_entry_name(plaintext: str) -> str:
    return f"{{mesh:key:{token_hash(plaintext)}}}:v2"


def worker_pids(server: GatewayServer) -> list[int]:
    return server.worker_pids()


def serving_pid(client: httpx.Client, pids: list[int]) -> int | None:
    """Which worker process holds the server side of the client's kept-alive connection."""
    response = client.get("/healthz")
    stream = response.extensions["network_stream"]
    local_port = stream.get_extra_info("client_addr")[1]
    for pid in pids:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == local_port:
                return pid
    return None


@pytest.fixture
def per_worker_clients(gateway: GatewayServer) -> Iterator[dict[int, httpx.Client]]:
    """One kept-alive connection to each gateway worker process, so a test can ask every worker."""
    pids = worker_pids(gateway)
    pinned: dict[int, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(40):
        client = httpx.Client(base_url=gateway.base_url, timeout=30, limits=httpx.Limits(max_connections=1))
        pid = serving_pid(client, pids)
        if pid is not None and pid not in pinned:
            pinned[pid] = client
        else:
            spare.append(client)  # held open so the next connection is accepted afresh
        if len(pinned) == len(pids):
            break
    for client in spare:
        client.close()
    assert len(pinned) == len(pids) == 2, f"could not reach both workers: {sorted(pinned)} of {pids}"
    yield pinned
    for client in pinned.values():
        client.close()
