"""An operator sees which providers are configured: /readyz names them, so does each worker's start-up
line, and /v1/models lists only their models."""

from __future__ import annotations

import httpx

from tests.support.gateway import GatewayServer

ALL = ["openai", "openrouter", "anthropic", "gemini", "azure"]


def test_readyz_names_the_configured_providers(
    providers_gateway: GatewayServer, gateway: GatewayServer
) -> None:
    assert httpx.get(f"{providers_gateway.base_url}/readyz").json()["providers"] == ALL
    assert httpx.get(f"{gateway.base_url}/readyz").json()["providers"] == ["openai", "openrouter"]


def test_start_up_output_names_the_configured_providers(providers_gateway: GatewayServer) -> None:
    assert f"providers configured: {', '.join(ALL)}" in providers_gateway.output()


def test_models_of_unconfigured_providers_are_not_listed(acme_http: httpx.Client) -> None:
    owners = {model["owned_by"] for model in acme_http.get("/models").json()["data"]}
    assert owners == {"openai", "openrouter"}
