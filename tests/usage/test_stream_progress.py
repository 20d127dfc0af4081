"""Streams are billed for what they delivered even when their web worker dies: the provisional entry
is kept current while streaming, and beat finalises what a dead worker left (estimated, billed)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import orjson
import redis
from django.conf import settings

from keys.services import CreatedKey
from keys.spend import key_counter_name
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.waiting import wait_until
from tests.usage.conftest import ledger_events, stream_events
from usage.codec import event_encode
from usage.finalising import usage_provisional_finalise
from usage.flushing import usage_stream_flush
from usage.models import UsageEvent
from usage.recording import PAYLOAD_FIELD, STREAM
from usage.store import usage_events_store
from usage.types import TokenUsage, UsageEventData


def test_a_stream_cut_by_a_killed_worker_bills_what_it_delivered_and_is_finalised(
    gateway: GatewayServer, acme_key: CreatedKey, usage_gateway_env: Callable[..., dict[str, str]]
) -> None:
    doomed = GatewayServer(env=usage_gateway_env(MESH_STREAM_PROGRESS_INTERVAL_S="0.2"), workers=1)
    doomed.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    body = chat_body(stream=True, mock={"chunks": 200, "chunk_delay_ms": 20})
    delivered = 0
    try:
        with (
            httpx.Client(base_url=doomed.base_url, headers=headers, timeout=10) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as streamed,
        ):
            for line in streamed.iter_lines():
                delivered += line.startswith("data: {")
                if delivered == 60:  # ~1.2 s in: several progress reports were written
                    # SIGKILL mid-stream (no finally runs), before leaving the loop: leaving it
                    # closes the line iterator and with it the connection, which the worker would
                    # otherwise settle as a client that left, if it ran before the kill.
                    doomed.process.kill()  # type: ignore[union-attr]
                    doomed.process.wait(5)  # type: ignore[union-attr]
                    break
    except httpx.HTTPError:
        pass  # the connection died with the process
    finally:
        doomed.stop()
    request_id = streamed.headers["X-Request-Id"]

    def progressed() -> UsageEvent | None:
        row = UsageEvent.objects.filter(request_id=request_id).first()
        return row if row is not None and row.completion_tokens >= 40 else None

    wait_until(progressed, what="the provisional entry's progress")  # before the finaliser
    # Every progress report the worker wrote before it died is flushed (the finaliser's own guard
    # assumes the longest stream has passed; this test finalises at once).
    wait_until(lambda: request_id not in {e.request_id for e in stream_events()}, what="the flush")
    row = UsageEvent.objects.get(request_id=request_id)
    assert row.provisional and row.error_code == "stream_unfinished" and row.http_status == 200
    assert 40 <= row.completion_tokens <= delivered + 15 and row.cost_usd > 0

    assert usage_provisional_finalise(older_than_s=0) == 1
    [final] = ledger_events([request_id]).values()
    assert not final.provisional and final.tokens_estimated and final.error_code == "stream_lost"
    assert final.completion_tokens == row.completion_tokens and final.cost_usd == row.cost_usd
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    counter = key_counter_name(acme_key.api_key.tenant_id, acme_key.api_key.pk, "monthly", datetime.now(UTC))
    assert int(test_redis.get(counter) or 0) == int(final.cost_usd * 1_000_000_000)  # billed once
    assert usage_provisional_finalise(older_than_s=0) == 0  # nothing left provisional
    assert not UsageEvent.objects.filter(error_code="stream_unfinished").exists()


def test_the_finaliser_waits_while_a_final_entry_may_still_be_in_the_backlog(
    acme_key: CreatedKey, ledger_flusher: LedgerFlusher
) -> None:
    """A provisional entry older than the longest stream is not finalised while older events still wait
    in the write-ahead stream (the flusher was down): its final entry may be among them."""
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    started = time.time() - 2 * (settings.MESH_STREAM_MAX_S + settings.MESH_STREAM_FINALISE_GRACE_S)
    opening = UsageEventData(
        request_id="req_backlogged", tenant_id=acme_key.api_key.tenant_id, key_id=acme_key.api_key.pk,
        model_requested="openai/gpt-4o-mini", started_at=started, streamed=True, provisional=True,
        tokens=TokenUsage(prompt_tokens=10), cost_usd=Decimal("0.001"), error_code="stream_unfinished",
        latency_ms=5,
    )  # fmt: skip
    final = dataclasses.replace(
        opening, provisional=False, error_code=None, tokens=TokenUsage(10, 500), cost_usd=Decimal("0.01")
    )
    with ledger_flusher.paused():
        usage_events_store(events=[opening])
        written_at_ms = int((started + 60) * 1000)  # the stream ended a minute in; the flusher was down since
        test_redis.xadd(STREAM, {PAYLOAD_FIELD: event_encode(final)}, id=f"{written_at_ms}-0")
        assert usage_provisional_finalise() == 0
        usage_stream_flush(consumer="test-flusher")
    assert usage_provisional_finalise() == 0
    row = UsageEvent.objects.get(request_id="req_backlogged")
    assert not row.provisional and row.error_code == "" and row.cost_usd == Decimal("0.01")


def test_no_stream_lasts_longer_than_the_longest_allowed(
    gateway: GatewayServer, acme_key: CreatedKey, usage_gateway_env: Callable[..., dict[str, str]]
) -> None:
    server = GatewayServer(
        env=usage_gateway_env(MESH_STREAM_MAX_S="1", MESH_STREAM_PROGRESS_INTERVAL_S="0.2"), workers=1
    )
    server.start()
    try:
        body = chat_body(stream=True, mock={"chunks": 100, "chunk_delay_ms": 50})  # would last 5 s
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {acme_key.plaintext}"},
            timeout=10,
        )
    finally:
        server.stop()
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    last = orjson.loads(lines[-2][6:])
    assert last["choices"][0]["finish_reason"] == "error" and last["error"]["code"] == "gateway_timeout"
    assert 15 <= len(lines) <= 30  # ~1 s of 50 ms chunks
    [event] = ledger_events([response.headers["X-Request-Id"]]).values()
    assert event.http_status == 504 and event.error_code == "gateway_timeout" and event.cost_usd > 0


def test_a_request_whose_worker_dies_before_it_answers_is_billed_by_the_finaliser(
    gateway: GatewayServer,
    simulator: SimulatorServer,
    acme_key: CreatedKey,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    """The upstream was called (and will bill Mesh), the worker died before recording anything: the
    in-flight note written before the upstream call becomes the request's entry, billed once."""
    doomed = GatewayServer(env=usage_gateway_env(MESH_STREAM_FINALISE_GRACE_S="0"), workers=1)
    doomed.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    body = chat_body(timeout=1, session_id="doomed", mock={"delay_s": 0.8})
    try:
        client = httpx.Client(base_url=doomed.base_url, headers=headers, timeout=10)
        pending = threading.Thread(target=lambda: suppress_http(client, body))
        pending.start()
        wait_until(lambda: simulator.requests(), what="the upstream call")
        doomed.process.kill()  # type: ignore[union-attr]  # SIGKILL while the upstream answers
        doomed.process.wait(5)  # type: ignore[union-attr]
        pending.join(10)
    finally:
        doomed.stop()
    assert not UsageEvent.objects.filter(session_id="doomed").exists()  # nothing recorded it

    time.sleep(1.1)  # past the note's finalise_after: 1 candidate x timeout 1 s + grace 0
    assert usage_provisional_finalise() == 1
    row = UsageEvent.objects.get(session_id="doomed")
    assert row.error_code == "worker_lost" and row.tokens_estimated and not row.provisional
    assert row.prompt_tokens > 0 and row.cost_usd > 0 and row.model_served == "openai/gpt-4o-mini"
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    counter = key_counter_name(acme_key.api_key.tenant_id, acme_key.api_key.pk, "monthly", datetime.now(UTC))
    assert int(test_redis.get(counter) or 0) == int(row.cost_usd * 1_000_000_000)
    assert usage_provisional_finalise() == 0  # once


def suppress_http(client: httpx.Client, body: dict[str, object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        client.post("/v1/chat/completions", json=body)
