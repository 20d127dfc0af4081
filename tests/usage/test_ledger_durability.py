"""The ledger loses nothing and counts nothing twice: write-ahead before the last byte, idempotent
flushes, crashed flushers taken over, bad entries set aside, and Redis outages."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import cast

import httpx
import redis
from django.conf import settings

from keys.services import CreatedKey
from simulator.server import free_port
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.usage.conftest import ledger_events, stream_events, wait_until
from usage.codec import event_encode
from usage.flushing import GROUP, usage_stream_flush
from usage.models import UsageEvent
from usage.recording import DEAD_LETTERS, PAYLOAD_FIELD, STREAM
from usage.store import usage_events_store
from usage.types import UsageEventData

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]  # what redis-py returns for XRANGE here


def test_the_event_is_in_redis_before_the_last_byte_and_lands_after_the_gateway_dies(
    gateway: GatewayServer,
    acme_key: CreatedKey,
    ledger_flusher: LedgerFlusher,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    doomed = GatewayServer(env=usage_gateway_env(), workers=1)
    doomed.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    try:
        with ledger_flusher.paused(), httpx.Client(base_url=doomed.base_url, headers=headers) as client:
            plain = client.post("/v1/chat/completions", json=chat_body())
            assert plain.headers["X-Request-Id"] in {e.request_id for e in stream_events()}
            with client.stream("POST", "/v1/chat/completions", json=chat_body(stream=True)) as streamed:
                at_done: set[str] = set()
                for line in streamed.iter_lines():
                    if line == "data: [DONE]":  # looked up the moment it arrives: written before it
                        at_done = {e.request_id for e in stream_events()}
            assert streamed.headers["X-Request-Id"] in at_done
            assert not UsageEvent.objects.exists()
            doomed.process.kill()  # type: ignore[union-attr]  # SIGKILL: no shutdown hook runs
            doomed.process.wait(5)  # type: ignore[union-attr]
    finally:
        doomed.stop()

    events = ledger_events([plain.headers["X-Request-Id"], streamed.headers["X-Request-Id"]])

    assert all(e.cost_usd > 0 and e.http_status == 200 for e in events.values())


def test_an_event_written_twice_to_the_stream_is_one_row(
    acme_http: httpx.Client, ledger_flusher: LedgerFlusher
) -> None:
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    with ledger_flusher.paused():
        request_id = acme_http.post("/chat/completions", json=chat_body()).headers["X-Request-Id"]
        [(_, fields)] = cast(StreamEntries, test_redis.xrange(STREAM))
        test_redis.xadd(STREAM, {PAYLOAD_FIELD: fields[PAYLOAD_FIELD]})  # a redelivery
        assert test_redis.xlen(STREAM) == 2

        usage_stream_flush(consumer="test-flusher")

    assert UsageEvent.objects.filter(request_id=request_id).count() == 1
    assert test_redis.xlen(STREAM) == 0


def test_a_crashed_flushers_events_are_taken_over_and_stored_once(
    acme_http: httpx.Client, ledger_flusher: LedgerFlusher
) -> None:
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    with ledger_flusher.paused():
        ids = [
            acme_http.post("/chat/completions", json=chat_body()).headers["X-Request-Id"] for _ in range(4)
        ]
        usage_stream_flush(consumer="warm-up", time_budget_s=0)  # creates the group, reads nothing
        # A flusher reads all four, stores two of them, and dies before acknowledging anything.
        [[_, entries]] = cast(
            list[tuple[bytes, StreamEntries]],
            test_redis.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=10),
        )
        from usage.codec import event_decode

        usage_events_store(events=[event_decode(fields[PAYLOAD_FIELD]) for _, fields in entries[:2]])
        assert test_redis.xpending(STREAM, GROUP)["pending"] == 4
        assert usage_stream_flush(consumer="fresh", claim_idle_ms=60_000).read == 0  # not idle long enough

        result = usage_stream_flush(consumer="fresh", claim_idle_ms=0)

    assert result.reclaimed == 4 and result.read == 4
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == sorted(ids)
    assert test_redis.xpending(STREAM, GROUP)["pending"] == 0 and test_redis.xlen(STREAM) == 0


def test_entries_the_database_refuses_are_set_aside_without_blocking_the_rest(
    acme_http: httpx.Client, acme_key: CreatedKey, ledger_flusher: LedgerFlusher
) -> None:
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    orphan = UsageEventData(
        request_id="req_orphan", tenant_id=acme_key.api_key.tenant_id, key_id=987654321,
        model_requested="openai/gpt-4o", started_at=1.0, cost_usd=Decimal("0.5"),
    )  # fmt: skip
    with ledger_flusher.paused():
        test_redis.xadd(STREAM, {PAYLOAD_FIELD: b"not json"})
        test_redis.xadd(STREAM, {PAYLOAD_FIELD: event_encode(orphan)})  # its key does not exist
        request_id = acme_http.post("/chat/completions", json=chat_body()).headers["X-Request-Id"]

        result = usage_stream_flush(consumer="test-flusher")

    assert (result.read, result.dead) == (3, 2)
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == [request_id]
    dead = [fields[b"reason"].decode() for _, fields in cast(StreamEntries, test_redis.xrange(DEAD_LETTERS))]
    assert len(dead) == 2 and "refused by the database" in dead
    assert test_redis.xlen(STREAM) == 0


def test_with_redis_down_events_go_straight_to_the_database(
    gateway: GatewayServer, acme_key: CreatedKey, usage_gateway_env: Callable[..., dict[str, str]]
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    cut_off = GatewayServer(env=usage_gateway_env(REDIS_URL=nowhere, CELERY_BROKER_URL=nowhere), workers=1)
    cut_off.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    try:
        bodies = [chat_body(), chat_body(stream=True), chat_body(model="openai/none")] * 4
        with (
            httpx.Client(base_url=f"{cut_off.base_url}/v1", headers=headers, timeout=30) as client,
            ThreadPoolExecutor(max_workers=len(bodies)) as pool,  # concurrent: grouped writes fail too
        ):
            responses = list(pool.map(lambda body: client.post("/chat/completions", json=body), bodies))
        assert [r.status_code for r in responses] == [200, 200, 404] * 4

        events = ledger_events([r.headers["X-Request-Id"] for r in responses])
    finally:
        cut_off.stop()

    assert sorted(e.http_status for e in events.values()) == [200] * 8 + [404] * 4
    assert not stream_events()  # nothing went through the (shared test) stream
    wait_until(lambda: "usage ledger stream" in cut_off.output(), timeout=2, what="the outage log line")


def test_a_stream_cut_off_by_the_gateway_dying_is_still_billed(
    gateway: GatewayServer,
    acme_key: CreatedKey,
    ledger_flusher: LedgerFlusher,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    """The process dies mid-stream: the provisional entry written before the first byte is billed."""
    doomed = GatewayServer(env=usage_gateway_env(), workers=1)
    doomed.start()
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    body = chat_body(stream=True, mock={"chunks": 100, "chunk_delay_ms": 50})
    try:
        with (
            httpx.Client(base_url=doomed.base_url, headers=headers, timeout=10) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as streamed,
        ):
            lines = streamed.iter_lines()
            for _ in range(4):
                next(lines)
            doomed.process.kill()  # type: ignore[union-attr]  # SIGKILL mid-stream
            doomed.process.wait(5)  # type: ignore[union-attr]
    except httpx.HTTPError:
        pass  # the connection died with the process, as it should
    finally:
        doomed.stop()

    request_id = streamed.headers["X-Request-Id"]
    [event] = ledger_events([request_id], final=False).values()
    assert event.provisional and event.streamed and event.tokens_estimated
    assert event.prompt_tokens > 0 and event.cost_usd > 0
    assert event.error_code == "stream_unfinished"


def test_a_finished_stream_replaces_its_provisional_entry(acme_http: httpx.Client) -> None:
    with acme_http.stream("POST", "/chat/completions", json=chat_body(stream=True, mock={"chunks": 5})) as r:
        request_id = r.headers["X-Request-Id"]
        r.read()
    [event] = ledger_events([request_id]).values()
    assert not event.provisional and not event.tokens_estimated
    assert event.completion_tokens == 5 and event.error_code == ""
    assert UsageEvent.objects.filter(request_id=request_id).count() == 1
