"""A provider that cannot be reached (nothing listens at its address): the request was never sent,
so it is retried once on the same provider, then the next `models` candidate answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from keys.services import CreatedKey
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer, free_port
from tests.providers.conftest import providers_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.usage.conftest import ledger_events


@pytest.fixture(scope="module")
def unreachable_anthropic(simulator: SimulatorServer, django_db_setup: Any) -> Iterator[GatewayServer]:
    env = providers_env(simulator)
    env["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    server = GatewayServer(env=env, workers=1)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_connection_refused_is_retried_then_falls_back(
    unreachable_anthropic: GatewayServer,
    simulator: SimulatorServer,
    ledger_flusher: LedgerFlusher,
    acme_key: CreatedKey,
    stream: bool,
) -> None:
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    try:
        body = {
            "model": "anthropic/claude-sonnet-4-5",
            "models": ["gemini/gemini-2.5-flash"],
            "messages": [{"role": "user", "content": "Say hello"}],
            "stream": stream,
        }
        response = httpx.post(
            f"{unreachable_anthropic.base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {acme_key.plaintext}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert '"model":"gemini/gemini-2.5-flash"' in response.text.replace(" ", "")
        request_id = response.headers["x-request-id"]
        attempts = ledger_events([request_id])[request_id].attempts
        assert [(a["provider"], a["status"], a["error_code"]) for a in attempts] == [
            ("anthropic", None, "upstream_error"),
            ("anthropic", None, "upstream_error"),
            ("gemini", 200, None),
        ]
    finally:
        ledger_flusher.pause()
