"""A key's model allow-list: other models (also as fallbacks) are 403 and never reach upstream."""

from __future__ import annotations

import httpx

from keys.models import Tenant
from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer


def test_models_outside_the_allow_list_are_forbidden(
    gateway: GatewayServer, simulator: SimulatorServer, tenant_acme: Tenant
) -> None:
    key = api_key_create(tenant=tenant_acme, allowed_models=["openai/gpt-4o-mini"], rpm=100)
    with httpx.Client(
        base_url=f"{gateway.base_url}/v1", headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        direct = client.post("/chat/completions", json=chat_body(model="openai/gpt-4o"))
        fallback = client.post("/chat/completions", json=chat_body(models=["openai/gpt-4.1"]))
        assert simulator.requests() == []
        allowed = client.post("/chat/completions", json=chat_body())
        listed = client.get("/models").json()["data"]
    assert direct.status_code == 403
    assert direct.json()["error"]["code"] == "forbidden" and direct.json()["error"]["param"] == "model"
    assert "x-ratelimit-remaining-requests" in direct.headers
    assert fallback.status_code == 403 and fallback.json()["error"]["param"] == "models.0"
    assert allowed.status_code == 200
    assert [model["id"] for model in listed] == ["openai/gpt-4o-mini"]
