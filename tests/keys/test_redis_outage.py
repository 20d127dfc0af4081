"""Redis going away mid-run: requests keep being served (keys from PostgreSQL, limits fail open by
default or closed when configured), one warning per outage, and /readyz says what is down."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import redis

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from simulator.server import SimulatorServer, free_port
from tests.conftest import chat_body, gateway_env
from tests.keys.conftest import wait_until
from tests.support.gateway import GatewayServer


class PrivateRedis:
    """A throwaway redis-server this test may stop and start (never the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def outage_gateway(
    simulator: SimulatorServer, private_redis: PrivateRedis, *, fail_open: bool
) -> GatewayServer:
    env = gateway_env(
        simulator,
        REDIS_URL=private_redis.url,
        CELERY_BROKER_URL=private_redis.url,
        MESH_LIMITS_FAIL_OPEN="true" if fail_open else "false",
    )
    return GatewayServer(env=env, workers=2 if fail_open else 1)


def chat_status(base_url: str, key: CreatedKey) -> httpx.Response:
    # A new connection per request, so both worker processes take part.
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        json=chat_body(),
        headers={"Authorization": f"Bearer {key.plaintext}", "Connection": "close"},
        timeout=30,
    )


def test_requests_keep_being_served_when_redis_stops_mid_run(
    gateway: GatewayServer, simulator: SimulatorServer, private_redis: PrivateRedis, tenant_acme: Tenant
) -> None:
    key = api_key_create(tenant=tenant_acme, rpm=1000, rpd=100_000, spend_cap_usd=Decimal(1))
    hard = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal(1), hard_cap=True)
    server = outage_gateway(simulator, private_redis, fail_open=True)
    server.start()
    try:
        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set() and len(statuses) < 400:
                statuses.append(chat_status(server.base_url, key).status_code)

        runner = threading.Thread(target=traffic)
        runner.start()
        wait_until(lambda: len(statuses) >= 3, what="traffic before the outage")
        served_before = len(statuses)
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        private_redis.stop()
        wait_until(lambda: len(statuses) >= served_before + 10, what="traffic during the outage")
        stop.set()
        runner.join(30)
        assert set(statuses) == {200}, f"failures during the outage: {[s for s in statuses if s != 200]}"

        ready = httpx.get(f"{server.base_url}/readyz")  # still serving: degraded, not unready
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"] is False
        log = server.output()
        warnings = log.count("Redis unavailable for rate limits")
        assert 1 <= warnings <= 2, log  # once per worker process, not once per request
        assert log.count("Redis unavailable for the API key cache") <= 2

        # A hard cap cannot be proven without Redis: it fails closed even when limits fail open.
        refused = chat_status(server.base_url, hard)
        assert refused.status_code == 402 and refused.headers["Retry-After"] == "1"

        private_redis.start()  # the outage ends: Redis is used again, and that is logged once
        assert all(chat_status(server.base_url, key).status_code == 200 for _ in range(6))
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        assert "Redis back for rate limits" in server.output()
    finally:
        server.stop()


def test_limits_fail_closed_when_configured(
    gateway: GatewayServer, simulator: SimulatorServer, private_redis: PrivateRedis, tenant_acme: Tenant
) -> None:
    key = api_key_create(tenant=tenant_acme, rpm=1000)
    server = outage_gateway(simulator, private_redis, fail_open=False)
    server.start()
    try:
        assert chat_status(server.base_url, key).status_code == 200
        private_redis.stop()
        refused = [chat_status(server.base_url, key) for _ in range(3)]
        assert {r.status_code for r in refused} == {429}
        assert refused[0].json()["error"]["code"] == "rate_limit_exceeded"
        assert refused[0].headers["Retry-After"] == "1"
        assert server.output().count("Redis unavailable for rate limits") == 1
        assert httpx.get(f"{server.base_url}/readyz").status_code == 503
    finally:
        server.stop()
