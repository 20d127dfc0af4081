"""The chat pipeline's rules hold on /v1/responses, native or translated: hard caps hold the worst
case before any upstream call (402), RPM limits (429), the model allow-list (403), `session_id`
and the served model on the one ledger row, and `models` fallback."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from keys.models import Tenant
from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.responses_api.conftest import ANTHROPIC_MODEL, OPENAI_MODEL
from tests.usage.conftest import ledger_events


def post(url: str, token: str, body: dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{url}/responses", json=body, headers=headers, timeout=30)


def _posts(simulator: SimulatorServer) -> list[dict[str, object]]:
    return [r for r in simulator.requests() if r["method"] == "POST"]


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_hard_cap_holds_the_worst_case(
    providers_url: str, tenant_acme: Tenant, simulator: SimulatorServer, model: str
) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.01"), hard_cap=True)
    refused = post(providers_url, key.plaintext, {"model": model, "input": "hi", "max_output_tokens": 20000})
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "spend_limit_exceeded"
    assert _posts(simulator) == []
    fits = post(providers_url, key.plaintext, {"model": model, "input": "hi", "max_output_tokens": 50})
    assert fits.status_code == 200, fits.text


def test_rate_limit_and_allow_list(providers_url: str, tenant_acme: Tenant) -> None:
    limited = api_key_create(tenant=tenant_acme, rpm=1)
    assert post(providers_url, limited.plaintext, {"model": OPENAI_MODEL, "input": "hi"}).status_code == 200
    second = post(providers_url, limited.plaintext, {"model": OPENAI_MODEL, "input": "hi"})
    assert second.status_code == 429 and second.headers["Retry-After"]
    openai_only = api_key_create(tenant=tenant_acme, allowed_models=[OPENAI_MODEL])
    forbidden = post(providers_url, openai_only.plaintext, {"model": ANTHROPIC_MODEL, "input": "hi"})
    assert forbidden.status_code == 403


def test_session_id_and_fallback_on_the_ledger_row(
    acme_raw: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", status=503, times=2)  # the native call fails, retried too...
    response = acme_raw.post(
        "/responses",
        json={"model": OPENAI_MODEL, "models": [ANTHROPIC_MODEL], "input": "hi", "session_id": "chat-42"},
    )
    assert response.status_code == 200 and response.json()["model"] == ANTHROPIC_MODEL  # ...Anthropic answers
    assert [r["path"] for r in _posts(simulator)] == ["/v1/responses", "/v1/responses", "/v1/messages"]
    request_id = response.headers["x-request-id"]
    row = ledger_events([request_id])[request_id]
    assert (row.session_id, row.model_requested, row.model_served) == (
        "chat-42",
        OPENAI_MODEL,
        ANTHROPIC_MODEL,
    )
    assert [attempt["model"] for attempt in row.attempts] == [OPENAI_MODEL, OPENAI_MODEL, ANTHROPIC_MODEL]
