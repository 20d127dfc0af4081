"""A stream is settled (upstream closed, final ledger entry written) however and whenever its client
leaves: before reading anything, or while the gateway is billing the stream's end."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.keys.test_redis_outage import PrivateRedis
from tests.support.gateway import GatewayServer
from tests.usage.conftest import catalog_cost, ledger_events, wait_until
from usage.models import UsageEvent


def _upstream_outcome(simulator: SimulatorServer, session_id: str) -> str | None:
    for entry in simulator.requests():
        body = entry.get("body")
        if isinstance(body, dict) and body.get("user") == session_id:
            return str(entry.get("outcome"))
    return None


def test_a_client_gone_right_after_the_headers_leaves_a_final_entry_and_closes_the_upstream(
    api_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    # `user` is forwarded to the upstream: it finds this request in the simulator's log.
    body = chat_body(stream=True, user="left-early", mock={"chunks": 40, "chunk_delay_ms": 100})
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=30) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        request_id = response.headers["X-Request-Id"]
        assert response.status_code == 200
        # Leaving the block closes the connection before a single event was read.

    [event] = ledger_events([request_id]).values()

    assert (event.http_status, event.error_code, event.cancelled) == (499, "client_disconnected", True)
    assert not event.provisional and event.streamed and event.tokens_estimated
    assert event.completion_tokens < 40
    assert event.cost_usd == catalog_cost("openai/gpt-4o-mini", event.prompt_tokens, event.completion_tokens)
    wait_until(
        lambda: _upstream_outcome(simulator, "left-early") == "client_disconnected",
        timeout=5,
        what="the upstream stream to be closed by the gateway",
    )


@pytest.fixture
def stalling_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


def test_a_client_leaving_while_its_stream_is_billed_does_not_cut_the_billing_off(
    gateway: GatewayServer,
    acme_key: CreatedKey,
    simulator: SimulatorServer,
    stalling_redis: PrivateRedis,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    """Redis stalls as the stream ends, so the final billing waits; the client leaves meanwhile.
    The billing must finish anyway (here: falling back to PostgreSQL when Redis times out), not be
    cancelled with the client's request, leaving only the provisional entry."""
    env = usage_gateway_env(
        REDIS_URL=stalling_redis.url, CELERY_BROKER_URL=stalling_redis.url, REDIS_COMMAND_TIMEOUT_S="1"
    )
    billing = GatewayServer(env=env, workers=1)
    billing.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    body = chat_body(stream=True, user="left-at-the-end", mock={"chunks": 4, "chunk_delay_ms": 100})
    assert stalling_redis.process is not None
    try:
        with (
            httpx.Client(base_url=f"{billing.base_url}/v1", headers=headers, timeout=30) as client,
            client.stream("POST", "/chat/completions", json=body) as response,
        ):
            request_id = response.headers["X-Request-Id"]
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = orjson.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    # The provisional entry is written; from now on Redis answers nothing.
                    stalling_redis.process.send_signal(signal.SIGSTOP)
                if chunk["choices"] and chunk["choices"][0].get("finish_reason"):
                    break
            time.sleep(0.4)  # the gateway is now waiting on Redis to bill the stream's end
            # Leaving the block disconnects, while that billing is in flight.
        time.sleep(1.5)  # past REDIS_COMMAND_TIMEOUT_S
        os.kill(stalling_redis.process.pid, signal.SIGKILL)  # what it never ran, it never will

        row = wait_until(
            lambda: UsageEvent.objects.filter(request_id=request_id).first(),
            timeout=10,
            what="the stream's final ledger entry",
        )
    finally:
        billing.stop()

    assert not row.provisional and row.error_code == "" and row.http_status == 200
    assert row.streamed and not row.tokens_estimated and row.completion_tokens == 4
    assert row.cost_usd == catalog_cost("openai/gpt-4o-mini", row.prompt_tokens, 4)
    assert _upstream_outcome(simulator, "left-at-the-end") == "completed"
