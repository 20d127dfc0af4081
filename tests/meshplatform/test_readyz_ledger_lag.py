"""/readyz reports "degraded" (still 200: the gateway serves) when the usage ledger stops reaching
PostgreSQL, and says how old the oldest unflushed event is."""

from __future__ import annotations

import time

import httpx

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.waiting import wait_until


def test_readyz_is_degraded_while_the_ledger_is_not_flushed(
    gateway: GatewayServer, simulator: SimulatorServer, acme_key: CreatedKey, ledger_flusher: LedgerFlusher
) -> None:
    server = GatewayServer(env=gateway_env(simulator, MESH_READYZ_MAX_LEDGER_LAG_S="1"), workers=1)
    server.start()
    try:
        ready = httpx.get(f"{server.base_url}/readyz").json()
        assert ready["status"] == "ok" and ready["checks"]["ledger"] is True
        assert ready["ledger"]["max_unflushed_age_s"] == 1

        with ledger_flusher.paused():  # the flusher stops (a dead Celery beat, a blocked database)
            response = httpx.post(
                f"{server.base_url}/v1/chat/completions",
                json=chat_body(),
                headers={"Authorization": f"Bearer {acme_key.plaintext}"},
            )
            assert response.status_code == 200
            assert httpx.get(f"{server.base_url}/readyz").json()["status"] == "ok"  # fresh: not lagging yet
            time.sleep(1.3)
            lagging = httpx.get(f"{server.base_url}/readyz")
            body = lagging.json()
            assert lagging.status_code == 200 and body["status"] == "degraded"
            assert body["checks"] == {"database": True, "redis": True, "ledger": False}
            assert body["ledger"]["oldest_unflushed_age_s"] >= 1.3
            assert body["ledger"]["unflushed_events"] == 1

        def caught_up() -> bool:
            status: str = httpx.get(f"{server.base_url}/readyz").json()["status"]
            return status == "ok"

        wait_until(caught_up, what="/readyz ok once the flusher caught up")
        assert httpx.get(f"{server.base_url}/readyz").json()["ledger"]["unflushed_events"] == 0
    finally:
        server.stop()
