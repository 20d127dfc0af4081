"""Retries: 429 (honouring Retry-After), 502, 503, 504 and connection errors, with backoff; two
by default, settable per client and per call; one Idempotency-Key across the retries of a call;
a stream is retried only before its first chunk. Attempts are counted where they land."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import meshapi
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from simulator.server import SimulatorServer
from tests.sdk.conftest import RequestLog

MINI = "openai/gpt-4o-mini"


def params(**fields: Any) -> meshapi.ChatCompletionParams:
    fields.setdefault("model", MINI)
    fields.setdefault("messages", [meshapi.ChatMessage(role="user", content="Say hello")])
    return meshapi.ChatCompletionParams(**fields)


def upstream_calls(simulator: SimulatorServer) -> int:
    return len([r for r in simulator.requests() if r["path"].endswith("/chat/completions")])


def test_502_is_retried_twice_by_default_with_one_idempotency_key(
    logged_mesh: meshapi.MeshAPI, request_log: RequestLog, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=2, status=500)
    reply = logged_mesh.chat.completions.create(params())
    assert reply.choices[0].message.content
    assert upstream_calls(simulator) == 3
    keys = {r.headers["idempotency-key"] for r in request_log.requests}
    assert len(request_log.requests) == 3 and len(keys) == 1


def test_each_call_has_its_own_idempotency_key(logged_mesh: meshapi.MeshAPI, request_log: RequestLog) -> None:
    logged_mesh.chat.completions.create(params())
    logged_mesh.chat.completions.create(params())
    logged_mesh.chat.completions.create(params(), idempotency_key="order-42")
    keys = [r.headers["idempotency-key"] for r in request_log.requests]
    assert len(set(keys)) == 3 and keys[2] == "order-42"


def test_get_requests_carry_no_idempotency_key(logged_mesh: meshapi.MeshAPI, request_log: RequestLog) -> None:
    logged_mesh.models.list()
    assert "idempotency-key" not in request_log.requests[0].headers


def test_retries_give_up_after_max_retries(
    mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=5, status=500)
    with meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext, max_retries=1) as mesh:
        with pytest.raises(meshapi.UpstreamError):
            mesh.chat.completions.create(params())
        assert upstream_calls(simulator) == 2
        with pytest.raises(meshapi.UpstreamError):
            mesh.chat.completions.create(params(), max_retries=0)  # per call beats per client
        assert upstream_calls(simulator) == 3
        reply = mesh.chat.completions.create(params(), max_retries=2)  # two failures left, then a reply
        assert reply.choices[0].message.content
        assert upstream_calls(simulator) == 6


def test_backoff_grows_between_attempts(
    mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=3, status=500)
    started = time.monotonic()
    with (
        meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh,
        pytest.raises(meshapi.UpstreamError),
    ):
        mesh.chat.completions.create(params())
    # 0.5 s then 1 s of backoff (plus up to 0.25 s of jitter each)
    assert time.monotonic() - started >= 1.5
    assert upstream_calls(simulator) == 3


def test_504_is_retried(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o-mini", times=1, delay_s=2)
    with meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
        reply = mesh.chat.completions.create(params(timeout=0.5))
    assert reply.choices[0].message.content
    assert upstream_calls(simulator) == 2


def test_503_is_retried(logged_mesh: meshapi.MeshAPI, request_log: RequestLog) -> None:
    with pytest.raises(meshapi.ProviderNotAvailableError):
        logged_mesh.chat.completions.create(params(model="anthropic/claude-haiku-4-5"))
    assert len(request_log.requests) == 3


@pytest.mark.parametrize(
    "error", [pytest.param({"model": "openai/nope"}, id="404"), pytest.param({"temperature": 9}, id="422")]
)
def test_client_errors_are_not_retried(
    logged_mesh: meshapi.MeshAPI, request_log: RequestLog, error: dict[str, Any]
) -> None:
    with pytest.raises(meshapi.APIStatusError):
        logged_mesh.chat.completions.create(params(**error))
    assert len(request_log.requests) == 1


def test_429_honours_retry_after(simulator: SimulatorServer) -> None:
    """Straight at an OpenAI-format server (the simulator) that says `Retry-After: 1` once."""
    simulator.reset()
    simulator.script(model="gpt-4o-mini", times=1, status=429, retry_after=1.2)
    started = time.monotonic()
    with meshapi.MeshAPI(base_url=simulator.base_url, token="sk-sim") as mesh:
        reply = mesh.chat.completions.create(params(model="gpt-4o-mini"))
    elapsed = time.monotonic() - started
    assert reply.choices[0].message.content
    assert upstream_calls(simulator) == 2
    assert elapsed >= 1.2  # Retry-After-Ms (1200), not the 0.5 s backoff


def test_a_daily_limit_is_not_slept_through(tenant_acme: Tenant, mesh_url: str) -> None:
    """A Retry-After longer than a minute (RPD) raises at once instead of blocking the caller."""
    key = api_key_create(tenant=tenant_acme, name="one a day", rpd=1)
    with meshapi.MeshAPI(base_url=mesh_url, token=key.plaintext) as mesh:
        mesh.chat.completions.create(params())
        started = time.monotonic()
        with pytest.raises(meshapi.RateLimitError) as caught:
            mesh.chat.completions.create(params())
    assert time.monotonic() - started < 1
    assert caught.value.retry_after is not None and caught.value.retry_after > 60


class DroppingServer:
    """A TCP server that accepts and closes every connection: a gateway dying mid-request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dropping_server() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.close()


def test_connection_errors_are_retried(dropping_server: DroppingServer) -> None:
    with meshapi.MeshAPI(base_url=dropping_server.url, token="rsk_x") as mesh:
        with pytest.raises(meshapi.APIConnectionError):
            mesh.chat.completions.create(params())
        assert dropping_server.accepted == 3
        with pytest.raises(meshapi.APIConnectionError):
            mesh.models.list(max_retries=0)
        assert dropping_server.accepted == 4


def test_async_client_retries_too(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o-mini", times=1, status=500)

    async def run() -> str | None:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
            reply = await mesh.chat.completions.create(params())
            return reply.choices[0].message.content

    assert asyncio.run(run())
    assert upstream_calls(simulator) == 2


def test_stream_is_retried_before_its_first_chunk(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o-mini", times=1, status=500)
    text = "".join(
        c.choices[0].delta.content or "" for c in mesh.chat.completions.stream(params()) if c.choices
    )
    assert text.startswith("Simulated reply")
    assert upstream_calls(simulator) == 2


def test_stream_is_never_retried_after_its_first_chunk(
    mesh: meshapi.MeshAPI, simulator: SimulatorServer
) -> None:
    chunks = []
    with pytest.raises(meshapi.UpstreamError):
        for chunk in mesh.chat.completions.stream(params(mock={"chunks": 6, "drop_after_chunks": 2})):
            chunks.append(chunk)
    assert chunks
    assert upstream_calls(simulator) == 1
