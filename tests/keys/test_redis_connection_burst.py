"""A burst of new client connections needs no more Redis connections than each worker's one
auto-pipelined connection plus a small pool: admission, caps, caches and the ledger never check
out a pool connection per request (4,000 new connections once exhausted a pool of 200)."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from keys.models import Tenant
from keys.services import api_key_create
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer

CLIENT_NAME = "mesh-burst-test"
WORKERS = 2
BURST = int(os.environ.get("MESH_TEST_BURST", "600"))  # 4000 for the figure (a slow run)


@pytest.fixture
def burst_gateway(simulator: SimulatorServer, transactional_db: None) -> Iterator[GatewayServer]:
    """Its Redis connections carry a client name, so CLIENT LIST can count them."""
    catalog_seed()
    env = gateway_env(simulator, REDIS_URL=f"{settings.REDIS_URL}?client_name={CLIENT_NAME}")
    server = GatewayServer(env=env, workers=WORKERS)
    server.start()
    yield server
    server.stop()


class ConnectionSampler(threading.Thread):
    """Counts the gateway's Redis connections every 20 ms; `peak` is the most seen at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.peak = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            named = [c for c in self.client.client_list() if c.get("name") == CLIENT_NAME]
            self.peak = max(self.peak, len(named))
            time.sleep(0.02)


# Unused over http, but each client would load its own (~50 ms each: minutes for 4,000 clients).
TLS = ssl.create_default_context()


async def one_stream(url: str, token: str) -> int:
    """A streamed request on its own new TCP connection."""
    body = chat_body(stream=True, mock={"chunks": 4, "chunk_delay_ms": 250})
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(timeout=60, limits=no_reuse, verify=TLS) as client,
        client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        async for _ in response.aiter_bytes():
            pass
        return response.status_code


async def burst(url: str, token: str) -> list[Any]:
    return await asyncio.gather(*(one_stream(url, token) for _ in range(BURST)), return_exceptions=True)


def test_a_burst_of_new_connections_shares_each_workers_redis_connection(
    burst_gateway: GatewayServer, tenant_acme: Tenant
) -> None:
    # A soft cap and limits: admission reads the cap counters, counts RPM/RPD and bills each request.
    key = api_key_create(tenant=tenant_acme, name="burst", rpm=100_000, spend_cap_usd=Decimal("1000"))
    url = f"{burst_gateway.base_url}/v1/chat/completions"
    assert asyncio.run(one_stream(url, key.plaintext)) == 200  # warm: key cached, catalog loaded
    sampler = ConnectionSampler()
    sampler.start()
    try:
        started = time.monotonic()
        statuses = asyncio.run(burst(url, key.plaintext))
        elapsed = time.monotonic() - started
    finally:
        sampler.stopping.set()
        sampler.join(5)
    assert statuses == [200] * BURST, sorted({repr(s) for s in statuses})[:5]
    log = burst_gateway.output()
    assert "Redis unavailable" not in log, log[-2000:]
    # Per worker: the auto-pipelined connection, plus at most two from the pool.
    print(f"{BURST} streams: peak {sampler.peak} Redis connections for {WORKERS} workers in {elapsed:.1f} s")
    assert sampler.peak <= WORKERS * 3, (sampler.peak, elapsed)
    assert sampler.peak >= WORKERS  # each worker's auto-pipelined connection is seen (and named)
