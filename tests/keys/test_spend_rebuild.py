"""A Redis flush loses no spend: the rebuild task restores every counter from the PostgreSQL ledger,
and running it again (or while requests are billed) never counts anything twice."""

from __future__ import annotations

from decimal import Decimal

import httpx
import redis

from keys.models import Tenant
from keys.services import api_key_create
from tests.conftest import chat_body
from tests.keys.conftest import key_counter, ledger_total, mini_cost, nano, tenant_counter, wait_for_ledger
from tests.support.gateway import GatewayServer
from usage.spend_rebuild import spend_counters_rebuild, spend_counters_rebuild_task


def spend(base_url: str, plaintext: str, prompt: int, completion: int) -> None:
    body = chat_body(mock={"prompt_tokens": prompt, "completion_tokens": completion})
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert (
        httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code
        == 200
    )


def test_flushed_counters_are_rebuilt_from_the_ledger(
    gateway: GatewayServer, tenant_acme: Tenant, tenant_globex: Tenant, test_redis: redis.Redis
) -> None:
    daily = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal(5), spend_cap_period="daily")
    lifetime = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal(5), spend_cap_period="lifetime")
    globex = api_key_create(tenant=tenant_globex)
    spend(gateway.base_url, daily.plaintext, 1000, 200)
    spend(gateway.base_url, daily.plaintext, 10, 20)
    spend(gateway.base_url, lifetime.plaintext, 300, 400)
    spend(gateway.base_url, globex.plaintext, 5, 5)
    wait_for_ledger(4)
    before = {
        "daily": key_counter(test_redis, tenant_acme, daily.api_key.pk, "daily"),
        "lifetime": key_counter(test_redis, tenant_acme, lifetime.api_key.pk, "lifetime"),
        "acme": tenant_counter(test_redis, tenant_acme),
        "globex": tenant_counter(test_redis, tenant_globex),
    }
    expected = {
        "daily": nano(mini_cost(1000, 200) + mini_cost(10, 20)),
        "lifetime": nano(mini_cost(300, 400)),
        "acme": nano(ledger_total(tenant_id=tenant_acme.pk)),
        "globex": nano(mini_cost(5, 5)),
    }
    assert before == expected

    test_redis.flushdb()
    assert tenant_counter(test_redis, tenant_acme) == 0
    assert spend_counters_rebuild_task.apply().get() == 5  # 3 key counters, 2 tenant counters
    after = {
        "daily": key_counter(test_redis, tenant_acme, daily.api_key.pk, "daily"),
        "lifetime": key_counter(test_redis, tenant_acme, lifetime.api_key.pk, "lifetime"),
        "acme": tenant_counter(test_redis, tenant_acme),
        "globex": tenant_counter(test_redis, tenant_globex),
    }
    assert after == expected
    assert test_redis.ttl(f"{{mesh:spend:{tenant_acme.pk}}}:k:{daily.api_key.pk}:d{_today()}") > 86400

    spend_counters_rebuild()  # idempotent: a second run sets the same values
    assert tenant_counter(test_redis, tenant_acme) == expected["acme"]

    spend(gateway.base_url, daily.plaintext, 1, 1)  # billing goes on from the rebuilt value
    wait_for_ledger(5)
    spend_counters_rebuild()
    assert key_counter(test_redis, tenant_acme, daily.api_key.pk, "daily") == expected["daily"] + nano(
        mini_cost(1, 1)
    )
    assert tenant_counter(test_redis, tenant_acme) == nano(ledger_total(tenant_id=tenant_acme.pk))


def test_rebuilt_counter_enforces_the_cap_after_a_flush(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=mini_cost(1000, 1000))
    spend(gateway.base_url, key.plaintext, 1000, 1000)
    wait_for_ledger(1)
    test_redis.flushdb()  # without the rebuild the cap would start from zero again
    spend_counters_rebuild()
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    response = httpx.post(f"{gateway.base_url}/v1/chat/completions", json=chat_body(), headers=headers)
    assert response.status_code == 402


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%d")
