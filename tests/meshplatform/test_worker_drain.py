"""A web worker told to stop (SIGTERM) drains: /readyz answers 503 "draining" while it still serves,
then it refuses new connections, finishes the streams it holds, and exits; a stream still open when
MESH_DRAIN_TIMEOUT_S passes is cut and billed once, for what it sent."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import redis
from django.conf import settings

from keys.services import CreatedKey
from keys.spend import key_counter_name
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.waiting import wait_until
from tests.usage.conftest import catalog_cost, ledger_events
from usage.finalising import usage_provisional_finalise
from usage.models import UsageEvent
from usage.recording import OPEN


@pytest.fixture
def draining_gateway(
    simulator: SimulatorServer, transactional_db: None, ledger_flusher: LedgerFlusher
) -> Iterator[Callable[..., GatewayServer]]:
    """Starts a one-worker gateway (uvicorn's own process gets the SIGTERM) with drain settings."""
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    servers: list[GatewayServer] = []

    def start(**drain: str) -> GatewayServer:
        server = GatewayServer(env=gateway_env(simulator, **drain), workers=1)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    ledger_flusher.pause()


class StreamReader(threading.Thread):
    """Reads one streamed chat completion in the background: its request id, content, `[DONE]`."""

    def __init__(self, base_url: str, token: str, mock: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.body = chat_body(stream=True, user="draining", mock=mock)
        self.request_id = ""
        self.content: list[str] = []
        self.done = False
        self.error: httpx.HTTPError | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, headers=self.headers, timeout=30) as response:
                self.request_id = response.headers["X-Request-Id"]
                for line in response.iter_lines():
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: {"):
                        choices = orjson.loads(line[6:])["choices"]
                        if choices and choices[0]["delta"].get("content"):
                            self.content.append(choices[0]["delta"]["content"])
        except httpx.HTTPError as error:
            self.error = error


def _refused(url: str) -> bool:
    """No new connection is served: refused, or reset (it reached the listen backlog just as the
    worker closed its socket)."""
    try:
        httpx.get(url, timeout=1)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False


def test_a_draining_worker_fails_readiness_while_it_serves_then_refuses_connections_and_finishes_its_stream(
    draining_gateway: Callable[..., GatewayServer], acme_key: CreatedKey
) -> None:
    server = draining_gateway(MESH_DRAIN_NOTICE_S="2", MESH_DRAIN_TIMEOUT_S="30")
    assert server.process is not None
    assert httpx.get(f"{server.base_url}/readyz").status_code == 200
    stream = StreamReader(server.base_url, acme_key.plaintext, {"chunks": 24, "chunk_delay_ms": 250})  # 6 s
    stream.start()
    wait_until(lambda: stream.content, timeout=10, what="the stream's first content")

    os.kill(server.process.pid, signal.SIGTERM)

    def not_ready() -> httpx.Response | None:
        response = httpx.get(f"{server.base_url}/readyz")
        return response if response.status_code == 503 else None

    ready = wait_until(not_ready, timeout=1.5, what="/readyz to fail")
    assert ready.json() == {
        "status": "draining",
        "detail": "This worker is shutting down: it finishes the requests it holds and takes no new ones.",
    }
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200  # alive: not to be killed
    # During the notice it still serves what reaches it.
    served = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=chat_body(),
        headers={"Authorization": f"Bearer {acme_key.plaintext}"},
    )
    assert served.status_code == 200
    # Then it takes no new connection, while its stream goes on.
    wait_until(lambda: _refused(f"{server.base_url}/healthz"), timeout=5, what="new connections refused")
    assert stream.is_alive() and not stream.done

    stream.join(15)
    assert stream.error is None and stream.done and len(stream.content) == 24
    server.process.wait(10)  # it exits once its stream is done

    events = ledger_events([stream.request_id, served.headers["X-Request-Id"]])
    assert {(e.http_status, e.error_code, e.cancelled) for e in events.values()} == {(200, "", False)}
    assert events[stream.request_id].completion_tokens == 24


def test_a_stream_open_past_the_drain_timeout_is_cut_and_billed_once(
    draining_gateway: Callable[..., GatewayServer], acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    server = draining_gateway(MESH_DRAIN_NOTICE_S="0", MESH_DRAIN_TIMEOUT_S="1")
    assert server.process is not None
    stream = StreamReader(server.base_url, acme_key.plaintext, {"chunks": 60, "chunk_delay_ms": 100})  # 6 s
    stream.start()
    wait_until(lambda: len(stream.content) >= 5, timeout=10, what="five content chunks")

    os.kill(server.process.pid, signal.SIGTERM)

    stream.join(15)
    assert not stream.done and len(stream.content) < 60  # cut, without [DONE]
    assert isinstance(stream.error, httpx.RemoteProtocolError)  # the body ends short of its end
    server.process.wait(15)

    [row] = ledger_events([stream.request_id]).values()
    assert (row.http_status, row.error_code, row.cancelled) == (503, "drain_timeout", True)
    assert not row.provisional and row.streamed and row.tokens_estimated
    assert len(stream.content) <= row.completion_tokens < 60
    assert row.cost_usd == catalog_cost("openai/gpt-4o-mini", row.prompt_tokens, row.completion_tokens)
    # Billed once: the spend counter holds exactly the entry's cost (the stream's progress plus the
    # rest at its cut), no in-flight note or provisional entry is left for beat to bill again.
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    counter = key_counter_name(acme_key.api_key.tenant_id, acme_key.api_key.pk, "monthly", datetime.now(UTC))
    assert int(test_redis.get(counter) or 0) == int(row.cost_usd * 1_000_000_000)
    assert test_redis.hlen(OPEN) == 0
    assert usage_provisional_finalise(older_than_s=0) == 0
    assert UsageEvent.objects.count() == 1

    # The gateway closed its upstream call (the simulator notes it once it sees the connection go).
    def outcomes() -> list[str | None] | None:
        seen = [entry.get("outcome") for entry in simulator.requests() if entry.get("body", {}).get("user")]
        return None if "pending" in seen else seen

    assert wait_until(outcomes, timeout=10, what="the upstream call's outcome") == ["client_disconnected"]
