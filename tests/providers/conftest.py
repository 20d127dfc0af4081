"""A gateway with every provider configured (Anthropic, Gemini and Azure OpenAI beside OpenAI),
each pointed at the simulator, which speaks its wire format; clients are the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from keys.services import CreatedKey
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher

# Each provider's model the tests use, and the model name the simulator sees.
MODELS = {
    "anthropic": ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
    "gemini": ("gemini/gemini-2.5-flash", "gemini-2.5-flash"),
    "azure": ("azure/gpt-4o-mini", "gpt-4o-mini"),
}
PROVIDERS = list(MODELS)


def providers_env(simulator: SimulatorServer) -> dict[str, str]:
    return gateway_env(
        simulator,
        ANTHROPIC_API_KEY="sk-ant-sim",
        ANTHROPIC_BASE_URL=f"{simulator.base_url}/v1",
        GEMINI_API_KEY="gemini-sim",
        GEMINI_BASE_URL=f"{simulator.base_url}/v1beta",
        AZURE_OPENAI_API_KEY="azure-sim",
        AZURE_OPENAI_BASE_URL=simulator.base_url,
        MESH_UPSTREAM_RETRIES="1",  # the production default
    )


@pytest.fixture(scope="session")
def providers_gateway_server(
    simulator: SimulatorServer, django_db_setup: Any, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    server = GatewayServer(env=providers_env(simulator), workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def providers_gateway(
    providers_gateway_server: GatewayServer,
    simulator: SimulatorServer,
    transactional_db: None,
    ledger_flusher: LedgerFlusher,
) -> Iterator[GatewayServer]:
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    yield providers_gateway_server
    ledger_flusher.pause()


@pytest.fixture
def providers_url(providers_gateway: GatewayServer) -> str:
    return f"{providers_gateway.base_url}/v1"


@pytest.fixture
def client(providers_url: str, acme_key: CreatedKey) -> Iterator[OpenAI]:
    """The official SDK, no client retries (the tests count upstream calls)."""
    sdk = OpenAI(base_url=providers_url, api_key=acme_key.plaintext, max_retries=0, timeout=30)
    yield sdk
    sdk.close()


@pytest.fixture
def http(providers_url: str, acme_key: CreatedKey) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=providers_url, headers={"Authorization": f"Bearer {acme_key.plaintext}"}, timeout=30
    ) as raw:
        yield raw


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def upstream_calls(simulator: SimulatorServer) -> list[dict[str, Any]]:
    """The completion requests the simulator received (not its control calls)."""
    return [r for r in simulator.requests() if r["method"] == "POST"]
