"""One Redis policy: unreachable Redis is an outage (logged once, served from the database, see
tests/keys/test_redis_outage.py); anything else Redis answers is a bug, never taken for an outage."""

from __future__ import annotations

from decimal import Decimal

import httpx
import redis
from django.conf import settings

from keys.models import Tenant
from templates_app.cache import cache_key
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.usage.conftest import ledger_events

OUTAGE_LINE = "Redis unavailable for the template cache"


def test_a_cache_entry_redis_refuses_to_read_is_a_500_with_its_ledger_entry_not_an_outage(
    gateway: GatewayServer, acme_http: httpx.Client, tenant_acme: Tenant
) -> None:
    created = acme_http.post(
        "/templates", json={"name": "greeting", "messages": [{"role": "system", "content": "Be kind."}]}
    )
    assert created.status_code == 201
    # The tenant's template cache is a hash; a string there makes every read a WRONGTYPE error.
    redis.Redis.from_url(settings.REDIS_URL).set(cache_key(tenant_acme.pk), "not a hash")
    outages_before = gateway.output().count(OUTAGE_LINE)

    response = acme_http.post("/chat/completions", json=chat_body(template="greeting"))

    assert response.status_code == 500
    assert response.json()["request_id"] == response.headers["X-Request-Id"]
    [event] = ledger_events([response.headers["X-Request-Id"]]).values()
    assert (event.http_status, event.error_code, event.cost_usd) == (500, "internal_error", Decimal(0))
    assert gateway.output().count(OUTAGE_LINE) == outages_before
