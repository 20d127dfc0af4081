"""Fixtures of the SDK tests: `meshapi` clients pointed at the live gateway with acme's key."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

if importlib.util.find_spec("meshapi") is None:
    # A venv made before requirements-dev.txt installed ./sdk/python (`make install` does it):
    # test the source tree, as the editable install would.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "python" / "src"))

from keys.services import CreatedKey
from tests.support.gateway import GatewayServer


@pytest.fixture
def mesh_url(gateway: GatewayServer) -> str:
    """The gateway's base URL as a user passes it (no /v1: the SDK adds the paths)."""
    return gateway.base_url


@pytest.fixture
def mesh(mesh_url: str, acme_key: CreatedKey) -> Iterator[Any]:
    from meshapi import MeshAPI

    with MeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30) as client:
        yield client


class RequestLog:
    """Every request an httpx client sent (event hook), to see headers and count attempts."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def async_hook(self, request: httpx.Request) -> None:
        self.requests.append(request)


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
def logged_mesh(mesh_url: str, acme_key: CreatedKey, request_log: RequestLog) -> Iterator[Any]:
    """A MeshAPI whose httpx client logs each attempt it sends."""
    from meshapi import MeshAPI

    http = httpx.Client(event_hooks={"request": [request_log.hook]})
    with MeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30, http_client=http) as client:
        yield client
    http.close()
