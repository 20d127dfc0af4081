"""A second gateway configured as `make run` is (DEBUG on) with CORS allowed for one origin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher

BROWSER_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="session")
def debug_gateway_server(
    simulator: SimulatorServer, django_db_setup: Any, django_db_blocker: Any, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    env = gateway_env(simulator, DEBUG="true", MESH_CORS_ALLOWED_ORIGINS=BROWSER_ORIGIN)
    server = GatewayServer(env=env, workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def debug_gateway(debug_gateway_server: GatewayServer, gateway: GatewayServer) -> GatewayServer:
    """Shares the per-test reset of `gateway` (catalog seeded, simulator and ledger ready)."""
    return debug_gateway_server
