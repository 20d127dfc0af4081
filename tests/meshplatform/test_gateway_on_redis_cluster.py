"""The gateway on a real 3-primary Redis Cluster (REDIS_CLUSTER=true, Celery's broker on a plain
Redis): auth, exact rate limits, hard caps and one ledger row per request, as on one server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.db.models import Sum
from django.test import override_settings

from keys.limits import window_keys
from keys.models import Tenant
from keys.services import CreatedKey, api_key_create, api_key_revoke
from keys.spend import holds_names, key_counter_name
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer
from tests.support.redis_cluster import RedisClusterServers
from tests.support.waiting import wait_until
from usage.flushing import usage_stream_flush
from usage.models import UsageEvent

# gpt-4o-mini's seed prices, USD per token, and a request the simulator prices exactly.
MINI_INPUT = Decimal("0.15") / 1_000_000
MINI_OUTPUT = Decimal("0.60") / 1_000_000
PROMPT, COMPLETION = 100, 1000
COST = PROMPT * MINI_INPUT + COMPLETION * MINI_OUTPUT


@pytest.fixture(scope="module")
def cluster_gateway(
    simulator: SimulatorServer, django_db_setup: Any, redis_cluster_servers: RedisClusterServers
) -> Iterator[GatewayServer]:
    """Two workers whose Redis is the cluster; their Celery broker is the test run's plain Redis."""
    env = gateway_env(
        simulator,
        REDIS_URL=redis_cluster_servers.url,
        REDIS_CLUSTER="true",
        CELERY_BROKER_URL=settings.REDIS_URL,
    )
    server = GatewayServer(env=env, workers=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_cluster(
    cluster_gateway: GatewayServer,
    redis_cluster: RedisClusterServers,
    simulator: SimulatorServer,
    transactional_db: None,
) -> Iterator[redis.RedisCluster]:
    """This process on the cluster too (its key revocations, catalog and ledger flushes go there);
    yields a cluster client for the test to read counters with."""
    with override_settings(REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True):
        catalog_seed()
        simulator.reset()
        client = redis.RedisCluster.from_url(redis_cluster.url)
        yield client
        client.close()


def assert_served_by_the_cluster(gateway: GatewayServer) -> None:
    """No fallback hid a failure: every limit, cap and ledger write above went through the cluster."""
    output = gateway.output()
    assert "Redis unavailable" not in output and "Traceback" not in output, output[-3000:]


def headers(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.plaintext}"}


def priced_body() -> dict[str, Any]:
    mock = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "delay_s": 0.2}
    return chat_body(max_tokens=COMPLETION, mock=mock)


def burst(base_url: str, requests: list[tuple[CreatedKey, dict[str, Any]]]) -> list[int]:
    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/v1/chat/completions", json=body, headers=headers(key))
                    for key, body in requests
                )
            )
        return [response.status_code for response in responses]

    return asyncio.run(run())


def ledger_rows(count: int, **filters: Any) -> int:
    """Flush the cluster's write-ahead stream as beat does until `count` rows match `filters`."""

    def probe() -> int:
        usage_stream_flush(consumer="cluster-test", claim_idle_ms=300, time_budget_s=1.0)
        found = UsageEvent.objects.filter(**filters).count()
        return found if found >= count else 0

    return wait_until(probe, timeout=20, what=f"{count} ledger rows")


def test_rate_limit_is_exact_on_a_cluster_and_one_tenant_spares_the_other(
    cluster_gateway: GatewayServer,
    on_cluster: redis.RedisCluster,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
) -> None:
    acme = api_key_create(tenant=tenant_acme, name="limited", rpm=15)
    globex = api_key_create(tenant=tenant_globex, name="globex")
    if 60 - time.time() % 60 < 10:  # a burst must not straddle two fixed windows
        time.sleep(60 - time.time() % 60 + 0.05)
    started = time.time()
    statuses = burst(cluster_gateway.base_url, [(acme, chat_body())] * 45 + [(globex, chat_body())] * 10)
    acme_statuses, globex_statuses = statuses[:45], statuses[45:]
    assert (acme_statuses.count(200), acme_statuses.count(429)) == (15, 30)
    assert globex_statuses == [200] * 10
    minute_counter = window_keys(acme.api_key.key_hash, started)[0][0]
    assert int(on_cluster.get(minute_counter) or 0) == 15  # refusals consumed nothing
    assert ledger_rows(45, api_key_id=acme.api_key.pk) == 45  # every request, refused ones too
    assert ledger_rows(10, api_key_id=globex.api_key.pk) == 10
    assert UsageEvent.objects.filter(api_key_id=acme.api_key.pk, http_status=200).count() == 15
    assert_served_by_the_cluster(cluster_gateway)


def test_a_hard_cap_is_never_exceeded_on_a_cluster(
    cluster_gateway: GatewayServer, on_cluster: redis.RedisCluster, tenant_acme: Tenant
) -> None:
    cap = 8 * COST
    key = api_key_create(tenant=tenant_acme, name="hard", spend_cap_usd=cap, hard_cap=True)
    statuses = burst(cluster_gateway.base_url, [(key, priced_body())] * 40)
    admitted = statuses.count(200)
    assert set(statuses) == {200, 402}
    assert admitted >= 1
    assert ledger_rows(40, api_key_id=key.api_key.pk) == 40
    spent = UsageEvent.objects.filter(api_key_id=key.api_key.pk).aggregate(total=Sum("cost_usd"))["total"]
    assert spent == admitted * COST  # each admitted request billed once…
    assert spent <= cap  # …and never past the hard cap
    counter = key_counter_name(tenant_acme.pk, key.api_key.pk, "monthly", datetime.now(UTC))
    assert int(on_cluster.get(counter) or 0) == int(spent * 1_000_000_000)  # every hold settled
    assert on_cluster.hlen(holds_names(tenant_acme.pk)[0]) == 0
    assert_served_by_the_cluster(cluster_gateway)


def test_a_revoked_key_is_refused_at_once_on_a_cluster(
    cluster_gateway: GatewayServer, on_cluster: redis.RedisCluster, tenant_acme: Tenant
) -> None:
    key = api_key_create(tenant=tenant_acme, name="soon revoked")
    url = f"{cluster_gateway.base_url}/v1/chat/completions"
    for _ in range(4):  # both workers have it cached
        assert httpx.post(url, json=chat_body(), headers=headers(key), timeout=30).status_code == 200
    api_key_revoke(api_key=key.api_key)
    refused = [httpx.post(url, json=chat_body(), headers=headers(key), timeout=30) for _ in range(4)]
    assert [response.status_code for response in refused] == [403] * 4
    assert refused[0].json()["error"]["code"] == "forbidden"
    unknown = httpx.post(url, json=chat_body(), headers={"Authorization": "Bearer rsk_nope"}, timeout=30)
    assert unknown.status_code == 401
    ready = httpx.get(f"{cluster_gateway.base_url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text  # its Redis probes (a cluster pipeline) answer too
    assert_served_by_the_cluster(cluster_gateway)


def test_templates_are_cached_and_invalidated_on_a_cluster_per_tenant(
    cluster_gateway: GatewayServer,
    on_cluster: redis.RedisCluster,
    simulator: SimulatorServer,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
) -> None:
    acme = api_key_create(tenant=tenant_acme, name="templates")
    globex = api_key_create(tenant=tenant_globex, name="globex templates")
    api = f"{cluster_gateway.base_url}/v1"

    def system_prompt_served(key: CreatedKey) -> tuple[int, str]:
        body = chat_body(template="greeting", variables={"name": "Ada"})
        response = httpx.post(f"{api}/chat/completions", json=body, headers=headers(key), timeout=30)
        if response.status_code != 200:
            return response.status_code, ""
        return 200, str(simulator.requests()[-1]["body"]["messages"][0]["content"])

    template = {"name": "greeting", "messages": [{"role": "system", "content": "Greet {{name}}."}]}
    created = httpx.post(f"{api}/templates", json=template, headers=headers(acme), timeout=30)
    assert created.status_code == 201, created.text
    assert [system_prompt_served(acme) for _ in range(3)] == [
        (200, "Greet Ada.")
    ] * 3  # cached after the first
    assert system_prompt_served(globex)[0] == 404  # acme's template is not globex's
    changed = {"messages": [{"role": "system", "content": "Welcome {{ name }}!"}]}
    patched = httpx.patch(f"{api}/templates/greeting", json=changed, headers=headers(acme), timeout=30)
    assert patched.status_code == 200, patched.text
    assert [system_prompt_served(acme) for _ in range(3)] == [(200, "Welcome Ada!")] * 3
    assert_served_by_the_cluster(cluster_gateway)
