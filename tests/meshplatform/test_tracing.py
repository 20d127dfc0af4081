"""OpenTelemetry traces: a gateway with MESH_OTEL_ENABLED exports its span tree over OTLP/HTTP to a
collector on loopback (a plain, a streamed and a failing-then-fallback request, a Celery job);
without it, nothing is exported."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from meshplatform.tracing import tracing_enabled
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.jobs.conftest import wait_for_job
from tests.support.celery_worker import CeleryWorker
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.otlp_collector import OtlpCollector, ReceivedSpan
from tests.support.waiting import wait_until
from usage.models import UsageEvent

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
PROMPT = "Say hello to the tracing test"


def traced_env(simulator: SimulatorServer, collector: OtlpCollector, **overrides: str) -> dict[str, str]:
    return gateway_env(
        simulator,
        MESH_OTEL_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",  # ms: spans reach the collector promptly
        **overrides,
    )


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_server(
    simulator: SimulatorServer,
    django_db_setup: Any,
    ledger_flusher: LedgerFlusher,
    collector: OtlpCollector,
) -> Iterator[GatewayServer]:
    server = GatewayServer(env=traced_env(simulator, collector), workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def traced_http(
    traced_server: GatewayServer,
    simulator: SimulatorServer,
    transactional_db: None,
    ledger_flusher: LedgerFlusher,
    collector: OtlpCollector,
    acme_key: CreatedKey,
) -> Iterator[httpx.Client]:
    catalog_seed()
    simulator.reset()
    collector.clear()
    ledger_flusher.resume()
    with httpx.Client(
        base_url=f"{traced_server.base_url}/v1",
        headers={"Authorization": f"Bearer {acme_key.plaintext}"},
        timeout=30,
    ) as client:
        yield client
    ledger_flusher.pause()


def request_trace(collector: OtlpCollector, request_id: str) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """The server span tagged with `request_id` and every span of its trace (all end before it)."""

    def server_span() -> ReceivedSpan | None:
        for span in collector.snapshot():
            if span.kind == "server" and span.attributes.get("mesh.request_id") == request_id:
                return span
        return None

    server = wait_until(server_span, timeout=10, what=f"the server span of {request_id}")
    return server, [span for span in collector.snapshot() if span.trace_id == server.trace_id]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> dict[str, list[ReceivedSpan]]:
    found: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.parent_span_id == parent.span_id:
            found.setdefault(span.name, []).append(span)
    return found


def assert_no_secrets(spans: list[ReceivedSpan], *secrets: str) -> None:
    text = repr([(span.name, span.attributes) for span in spans])
    for secret in secrets:
        assert secret not in text


def test_plain_request_continues_the_clients_trace_with_a_span_per_step(
    traced_http: httpx.Client, collector: OtlpCollector, acme_key: CreatedKey
) -> None:
    response = traced_http.post(
        "/chat/completions",
        json=chat_body(messages=[{"role": "user", "content": PROMPT}]),
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["X-Request-Id"]
    server, spans = request_trace(collector, request_id)

    assert server.name == "POST /v1/chat/completions"
    assert server.service == "mesh-gateway"
    assert (server.trace_id, server.parent_span_id) == (CLIENT_TRACE_ID, CLIENT_SPAN_ID)
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.request.method"] == "POST"
    steps = children(spans, server)
    for name in (
        "mesh.auth",
        "mesh.validate",
        "mesh.model.resolve",
        "chat gpt-4o-mini",
        "mesh.ledger.record",
    ):
        assert len(steps.get(name, [])) == 1, (name, sorted(steps))
    assert "mesh.template.expand" not in steps  # no template asked for
    assert "mesh.spend.hold" not in steps  # acme's key has no cap to hold against
    assert steps["mesh.ledger.record"][0].attributes["mesh.request_id"] == request_id

    attempt = steps["chat gpt-4o-mini"][0]
    usage = response.json()["usage"]
    assert attempt.kind == "client"
    assert attempt.attributes["gen_ai.operation.name"] == "chat"
    assert attempt.attributes["gen_ai.system"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attempt.attributes["gen_ai.response.model"].startswith("gpt-4o-mini")
    assert attempt.attributes["mesh.model"] == "openai/gpt-4o-mini"
    assert attempt.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attempt.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["mesh.attempt"] == 1
    assert attempt.status_code != 2
    assert_no_secrets(spans, PROMPT, response.json()["choices"][0]["message"]["content"], acme_key.plaintext)


def test_streamed_attempt_span_ends_with_the_stream_and_its_final_usage(
    traced_http: httpx.Client, collector: OtlpCollector
) -> None:
    body = chat_body(
        stream=True, stream_options={"include_usage": True}, mock={"chunks": 8, "chunk_delay_ms": 50}
    )
    started = time.monotonic()
    with connect_sse(traced_http, "POST", "/chat/completions", json=body) as source:
        request_id = source.response.headers["X-Request-Id"]
        events = [event.data for event in source.iter_sse()]
    streamed_s = time.monotonic() - started
    assert events[-1] == "[DONE]"
    usage = orjson.loads(events[-2])["usage"]
    server, spans = request_trace(collector, request_id)

    steps = children(spans, server)
    attempt = steps["chat gpt-4o-mini"][0]
    assert attempt.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"] == 8
    assert attempt.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attempt.attributes["mesh.usage.estimated"] is False
    # Open until the last chunk (8 × 50 ms), not only until the first one; inside the server span.
    assert (attempt.end_ns - attempt.start_ns) / 1e9 >= 0.3
    assert (attempt.end_ns - attempt.start_ns) / 1e9 <= streamed_s
    assert server.start_ns <= attempt.start_ns and attempt.end_ns <= server.end_ns
    ledger = steps["mesh.ledger.record"][0]
    assert ledger.start_ns >= attempt.end_ns  # the stream is billed once it has ended


def test_stream_the_client_leaves_ends_its_attempt_span_as_cancelled(
    traced_http: httpx.Client, collector: OtlpCollector
) -> None:
    body = chat_body(stream=True, mock={"chunks": 100, "chunk_delay_ms": 50})
    with traced_http.stream("POST", "/chat/completions", json=body) as response:
        request_id = response.headers["X-Request-Id"]
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    server, spans = request_trace(collector, request_id)

    attempt = children(spans, server)["chat gpt-4o-mini"][0]
    assert attempt.attributes["mesh.stream.cancelled"] is True
    assert attempt.attributes["mesh.usage.estimated"] is True  # the usage chunk never came
    assert 1 <= attempt.attributes["gen_ai.usage.output_tokens"] < 100
    assert "gen_ai.response.finish_reasons" not in attempt.attributes


def test_failing_then_fallback_request_has_one_span_per_attempt(
    traced_http: httpx.Client, collector: OtlpCollector, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=1, status=503)
    response = traced_http.post(
        "/chat/completions", json=chat_body(model="openai/gpt-4o", models=["openai/gpt-4o-mini"])
    )
    assert response.status_code == 200, response.text
    server, spans = request_trace(collector, response.headers["X-Request-Id"])

    assert server.parent_span_id == ""  # no traceparent: the trace starts here
    steps = children(spans, server)
    failed, served = steps["chat gpt-4o"][0], steps["chat gpt-4o-mini"][0]
    assert failed.attributes["mesh.attempt"] == 1 and served.attributes["mesh.attempt"] == 2
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "upstream_error"
    assert failed.status_code == 2
    assert "gen_ai.usage.output_tokens" not in failed.attributes
    assert served.attributes["http.response.status_code"] == 200
    assert served.attributes["gen_ai.usage.output_tokens"] == response.json()["usage"]["completion_tokens"]
    assert failed.end_ns <= served.start_ns


def test_template_and_hard_cap_requests_have_their_step_spans(
    traced_http: httpx.Client, collector: OtlpCollector, tenant_acme: Tenant
) -> None:
    capped = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal("5"), hard_cap=True)
    template = {
        "name": "greeter",
        "messages": [{"role": "system", "content": "You greet {{company}} customers."}],
    }
    assert traced_http.post("/templates", json=template).status_code == 201
    response = traced_http.post(
        "/chat/completions",
        json=chat_body(template="greeter", variables={"company": "Initech"}),
        headers={"Authorization": f"Bearer {capped.plaintext}"},
    )
    assert response.status_code == 200, response.text
    server, spans = request_trace(collector, response.headers["X-Request-Id"])

    steps = children(spans, server)
    assert len(steps["mesh.template.expand"]) == 1
    assert len(steps["mesh.spend.hold"]) == 1
    hold, attempt = steps["mesh.spend.hold"][0], steps["chat gpt-4o-mini"][0]
    assert hold.end_ns <= attempt.start_ns  # the worst case is held before the upstream call
    assert_no_secrets(spans, "Initech", capped.plaintext)


def test_refused_request_ends_its_server_span_with_the_status(
    traced_http: httpx.Client, collector: OtlpCollector
) -> None:
    response = traced_http.post("/chat/completions", json=chat_body(temperature="hot"))
    assert response.status_code == 422
    server, spans = request_trace(collector, response.headers["X-Request-Id"])
    assert server.attributes["http.response.status_code"] == 422
    steps = children(spans, server)
    validate = steps["mesh.validate"][0]
    assert validate.status_code == 2 and validate.attributes["error.type"] == "validation_error"
    assert not any(name.startswith("chat ") for name in steps)  # never sent upstream


def test_async_job_is_traced_in_the_worker_with_its_request_id(
    traced_http: httpx.Client, collector: OtlpCollector, simulator: SimulatorServer
) -> None:
    worker = CeleryWorker(env=traced_env(simulator, collector), beat=True).start()
    try:
        response = traced_http.post(
            "/chat/completions", json=chat_body(async_mode=True), headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 202, response.text
        job = wait_for_job(traced_http, response.json()["id"])
        assert job["status"] == "succeeded", job
        request_id = response.headers["X-Request-Id"]

        def job_request_span() -> ReceivedSpan | None:
            for span in collector.snapshot():
                if span.name == "mesh.request" and span.attributes.get("mesh.request_id") == request_id:
                    return span
            return None

        request_span = wait_until(job_request_span, timeout=10, what="the job's mesh.request span")

        def task_span() -> ReceivedSpan | None:  # it ends (and is exported) after its children
            return next((s for s in collector.snapshot() if s.span_id == request_span.parent_span_id), None)

        task = wait_until(task_span, timeout=10, what="the job's task span")
        spans = collector.snapshot()
        assert task.name == "run/routing.job_run" and task.kind == "consumer"
        assert task.service == request_span.service == "mesh-worker"
        assert task.trace_id == CLIENT_TRACE_ID  # the submission's trace goes on in the worker
        assert "chat gpt-4o-mini" in children(spans, request_span)
        # The ledger flusher (beat, every MESH_USAGE_FLUSH_INTERVAL_S) is traced too.
        wait_until(
            lambda: any(span.name == "run/usage.flush" for span in collector.snapshot()),
            timeout=10,
            what="a traced usage.flush task",
        )
    finally:
        worker.kill()


def test_batch_lines_are_each_a_request_span_under_the_batch_task(
    traced_http: httpx.Client,
    traced_server: GatewayServer,
    collector: OtlpCollector,
    simulator: SimulatorServer,
    acme_key: CreatedKey,
    tenant_acme: Tenant,
) -> None:
    from openai import OpenAI

    from tests.jobs.test_batches import request_line, upload, wait_for_batch

    worker = CeleryWorker(env=traced_env(simulator, collector)).start()
    client = OpenAI(base_url=f"{traced_server.base_url}/v1", api_key=acme_key.plaintext, max_retries=0)
    try:
        uploaded = upload(client, [request_line(f"line-{i}") for i in range(3)])
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert wait_for_batch(client, batch.id, timeout=60).status == "completed"
        billed = wait_until(
            lambda: (
                set(UsageEvent.objects.filter(tenant_id=tenant_acme.id).values_list("request_id", flat=True))
                if UsageEvent.objects.filter(tenant_id=tenant_acme.id).count() == 3
                else None
            ),
            what="the batch's three usage events",
        )

        def line_spans() -> list[ReceivedSpan] | None:
            found = [span for span in collector.snapshot() if span.name == "mesh.request"]
            return found if len(found) == 3 else None

        lines = wait_until(line_spans, what="three mesh.request spans")
        assert {span.attributes["mesh.request_id"] for span in lines} == billed
        (task_span_id,) = {span.parent_span_id for span in lines}
        task = wait_until(
            lambda: next((s for s in collector.snapshot() if s.span_id == task_span_id), None),
            what="the batch's task span",
        )
        assert task.name == "run/routing.batch_run"
        spans = collector.snapshot()
        assert all("chat gpt-4o-mini" in children(spans, line) for line in lines)
    finally:
        client.close()
        worker.kill()


def test_with_tracing_off_nothing_is_exported(
    simulator: SimulatorServer,
    transactional_db: None,
    ledger_flusher: LedgerFlusher,
    acme_key: CreatedKey,
) -> None:
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    with OtlpCollector() as quiet:
        env = gateway_env(simulator, OTEL_EXPORTER_OTLP_ENDPOINT=quiet.endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        env.pop("MESH_OTEL_ENABLED", None)
        assert "MESH_OTEL_ENABLED" not in os.environ
        server = GatewayServer(env=env, workers=1)
        server.start()
        try:
            headers = {"Authorization": f"Bearer {acme_key.plaintext}", "traceparent": TRACEPARENT}
            with httpx.Client(base_url=f"{server.base_url}/v1", headers=headers, timeout=30) as client:
                assert client.post("/chat/completions", json=chat_body()).status_code == 200
                with connect_sse(client, "POST", "/chat/completions", json=chat_body(stream=True)) as source:
                    events = [event.data for event in source.iter_sse()]
                assert events[-1] == "[DONE]"
            time.sleep(1.0)  # twenty export intervals
        finally:
            server.stop()
        assert quiet.posts == 0
    ledger_flusher.pause()


@pytest.mark.parametrize(
    ("enabled", "sdk_disabled", "expected"),
    [(False, None, False), (True, None, True), (True, "true", False), (True, "false", True)],
)
def test_tracing_is_on_only_when_asked_and_not_disabled_by_the_sdk_switch(
    settings: Any, monkeypatch: pytest.MonkeyPatch, enabled: bool, sdk_disabled: str | None, expected: bool
) -> None:
    settings.MESH_OTEL_ENABLED = enabled
    if sdk_disabled is None:
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    else:
        monkeypatch.setenv("OTEL_SDK_DISABLED", sdk_disabled)
    assert tracing_enabled() is expected
