"""RPM and RPD: exact under concurrency across two workers, refusals consume nothing, and every
response says where the key stands (OpenAI's x-ratelimit-* headers, Retry-After on 429)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import cast

import httpx
import redis

from keys.limits import window_keys
from keys.models import Tenant
from keys.services import api_key_create
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer


def wait_for_minute_with(seconds_left: float) -> None:
    """Fixed windows reset on the minute: start a burst only when it cannot straddle two windows."""
    left = 60 - time.time() % 60
    if left < seconds_left:
        time.sleep(left + 0.05)


def test_200_concurrent_requests_at_rpm_50_admit_exactly_50(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, name="burst", rpm=50)
    headers = {"Authorization": f"Bearer {key.plaintext}"}

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/v1/chat/completions", json=chat_body(), headers=headers) for _ in range(200))
            )

    wait_for_minute_with(10)
    started = time.time()
    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    minute_key = window_keys(key.api_key.key_hash, started)[0][0]
    counter = int(test_redis.get(minute_key) or 0)
    admitted, refused_count = statuses.count(200), statuses.count(429)
    print(f"\nRPM 50, 200 concurrent: {admitted} admitted, {refused_count} refused, Redis counter {counter}")
    assert statuses.count(200) == 50
    assert statuses.count(429) == 150
    assert counter == 50
    refused = next(r for r in responses if r.status_code == 429)
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    left = 60 - int(time.time() % 60)
    assert error["retry_after_seconds"] == int(refused.headers["Retry-After"])
    assert left <= error["retry_after_seconds"] <= left + 2
    assert refused.headers["x-ratelimit-limit-requests"] == "50"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_every_response_carries_the_limit_headers(api_url: str, tenant_acme: Tenant) -> None:
    key = api_key_create(tenant=tenant_acme, rpm=5, rpd=1000)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    wait_for_minute_with(5)
    with httpx.Client(base_url=api_url, timeout=30, headers=headers) as client:
        first = client.post("/chat/completions", json=chat_body())
        unknown_model = client.post("/chat/completions", json=chat_body(model="openai/no-such-model"))
        invalid = client.post("/chat/completions", json={"messages": "not a list"})
        streamed = client.post("/chat/completions", json=chat_body(stream=True))
    assert [first.status_code, unknown_model.status_code, invalid.status_code, streamed.status_code] == [
        200, 404, 422, 200,
    ]  # fmt: skip
    for remaining, response in zip([4, 3, 2, 1], [first, unknown_model, invalid, streamed], strict=True):
        assert response.headers["x-ratelimit-limit-requests"] == "5"
        assert response.headers["x-ratelimit-remaining-requests"] == str(remaining)
        reset = int(response.headers["x-ratelimit-reset-requests"].removesuffix("s"))
        assert 1 <= reset <= 60


def test_a_request_refused_by_the_day_window_consumes_neither_window(
    api_url: str, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, rpm=100, rpd=3)
    wait_for_minute_with(5)
    now = time.time()
    with httpx.Client(
        base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key.plaintext}"}
    ) as c:
        statuses = [c.post("/chat/completions", json=chat_body()).status_code for _ in range(3)]
        refused = c.post("/chat/completions", json=chat_body())
        c.post("/chat/completions", json=chat_body())
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    (minute_key, day_key), _, _ = window_keys(key.api_key.key_hash, now)
    assert int(cast(bytes, test_redis.get(minute_key))) == 3
    assert int(cast(bytes, test_redis.get(day_key))) == 3
    seconds_to_midnight = 86400 - time.time() % 86400
    retry_after = refused.json()["error"]["retry_after_seconds"]
    assert retry_after == int(refused.headers["Retry-After"])
    assert math.floor(seconds_to_midnight) - 2 <= retry_after <= math.ceil(seconds_to_midnight) + 1
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert "per day" in refused.json()["error"]["message"]


def test_limits_are_per_key_so_one_tenant_cannot_exhaust_another(
    api_url: str, tenant_acme: Tenant, tenant_globex: Tenant
) -> None:
    acme = api_key_create(tenant=tenant_acme, rpm=2)
    globex = api_key_create(tenant=tenant_globex, rpm=2)
    wait_for_minute_with(5)
    with httpx.Client(base_url=api_url, timeout=30) as client:
        acme_statuses = [
            client.post(
                "/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {acme.plaintext}"}
            ).status_code
            for _ in range(3)
        ]
        globex_status = client.post(
            "/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {globex.plaintext}"}
        ).status_code
    assert acme_statuses == [200, 200, 429]
    assert globex_status == 200
