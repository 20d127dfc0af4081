"""CORS for browser clients: off by default; with MESH_CORS_ALLOWED_ORIGINS, /v1/* answers the
listed origins and preflight OPTIONS is answered without a key."""

from __future__ import annotations

import httpx

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.routing.conftest import BROWSER_ORIGIN
from tests.support.gateway import GatewayServer

PREFLIGHT = {
    "Origin": BROWSER_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os, x-stainless-retry-count",
}


def test_cors_is_off_by_default(gateway: GatewayServer, acme_key: CreatedKey) -> None:
    url = f"{gateway.base_url}/v1/chat/completions"
    preflight = httpx.options(url, headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.headers["content-type"] == "application/json"  # the JSON 405, not a page
    answer = httpx.post(
        url,
        json=chat_body(),
        headers={"Origin": BROWSER_ORIGIN, "Authorization": f"Bearer {acme_key.plaintext}"},
    )
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_preflight_is_answered_without_a_key(
    debug_gateway: GatewayServer, simulator: SimulatorServer
) -> None:
    for path in ("/v1/chat/completions", "/v1/models", "/v1/models/openai/gpt-4o", "/v1/templates"):
        response = httpx.options(f"{debug_gateway.base_url}{path}", headers=PREFLIGHT)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == BROWSER_ORIGIN
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-stainless-os", "x-stainless-retry-count"} <= allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers
        assert response.headers["x-request-id"]
    assert simulator.requests() == []


def test_allowed_origin_reads_answers_and_their_headers(
    debug_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    headers = {"Origin": BROWSER_ORIGIN, "Authorization": f"Bearer {acme_key.plaintext}"}
    answer = httpx.post(f"{debug_gateway.base_url}/v1/chat/completions", json=chat_body(), headers=headers)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed
    refused = httpx.get(f"{debug_gateway.base_url}/v1/models", headers={"Origin": BROWSER_ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    streamed = httpx.post(
        f"{debug_gateway.base_url}/v1/chat/completions", json=chat_body(stream=True), headers=headers
    )
    assert streamed.headers["access-control-allow-origin"] == BROWSER_ORIGIN
    assert streamed.text.rstrip().endswith("data: [DONE]")


def test_other_origins_and_paths_get_no_cors(debug_gateway: GatewayServer) -> None:
    evil = {**PREFLIGHT, "Origin": "https://evil.example.net"}
    response = httpx.options(f"{debug_gateway.base_url}/v1/chat/completions", headers=evil)
    assert "access-control-allow-origin" not in response.headers
    admin = httpx.options(f"{debug_gateway.base_url}/admin/login/", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in admin.headers
