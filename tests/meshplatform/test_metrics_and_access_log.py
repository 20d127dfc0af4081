"""GET /metrics (guarded by MESH_METRICS_TOKEN, summed over two uvicorn workers) and the JSON
access line each request leaves, through the real HTTP interface."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from keys.services import CreatedKey
from meshplatform import metrics as gateway_metrics
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher

TOKEN = "scrape-token-for-tests"
FLUSH_S = 0.2  # each worker writes its samples this long after it took them (metric_samples)
DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "mesh-gateway.json"
PROMPT = "Tell me about the purple elephant parade"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metrics_server(
    simulator: SimulatorServer, django_db_setup: Any, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    """A gateway with /metrics on, two workers, and only acme opted in to its own tenant label."""
    env = gateway_env(
        simulator, MESH_METRICS_TOKEN=TOKEN, MESH_METRICS_TENANTS="acme", MESH_METRICS_FLUSH_S=str(FLUSH_S)
    )
    server = GatewayServer(env=env, workers=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def metrics_gateway(
    metrics_server: GatewayServer,
    simulator: SimulatorServer,
    transactional_db: None,
    ledger_flusher: LedgerFlusher,
) -> Iterator[GatewayServer]:
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    yield metrics_server
    ledger_flusher.pause()


def scrape(server: GatewayServer) -> Samples:
    response = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape_written(server: GatewayServer, before: Samples, name: str, expected: float) -> Samples:
    """The first scrape whose `name` moved by `expected` since `before`: each worker writes its
    samples within FLUSH_S, the scraped one at once. Fails if it takes longer than a few intervals."""
    deadline = time.monotonic() + 10 * FLUSH_S + 2
    while True:
        after = scrape(server)
        if total(after, name) - total(before, name) >= expected or time.monotonic() > deadline:
            return after
        time.sleep(FLUSH_S / 4)


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


def chat(server: GatewayServer, key: CreatedKey, **overrides: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=chat_body(messages=[{"role": "user", "content": PROMPT}], **overrides),
        headers={"Authorization": f"Bearer {key.plaintext}"},
        timeout=30,
    )


def test_metrics_is_404_while_no_token_is_configured(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_no_samples_are_taken_while_no_token_is_configured(
    gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    """Nobody can scrape them, so a deployment without MESH_METRICS_TOKEN pays nothing for them:
    its workers' sample files hold no request, token or cost sample, though they answered."""
    assert chat(gateway, acme_key).status_code == 200
    stream = chat(gateway, acme_key, stream=True)
    assert stream.status_code == 200 and "[DONE]" in stream.text
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=gateway.metrics_dir)  # type: ignore[no-untyped-call]
    counted = {
        sample.name: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.value and family.name in {"mesh_requests", "mesh_tokens", "mesh_cost_usd", "mesh_in_flight"}
    }
    assert counted == {}


def test_metrics_refuses_a_missing_or_wrong_token(metrics_gateway: GatewayServer) -> None:
    url = f"{metrics_gateway.base_url}/metrics"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": TOKEN}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert TOKEN not in response.text


def test_counters_move_by_exactly_the_requests_made_across_both_workers(
    metrics_gateway: GatewayServer, acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    before = scrape(metrics_gateway)
    answers = [chat(metrics_gateway, acme_key) for _ in range(6)]
    assert all(answer.status_code == 200 for answer in answers)
    assert chat(metrics_gateway, globex_key).status_code == 200
    assert chat(metrics_gateway, acme_key, model="openai/no-such-model").status_code == 404
    for _ in range(2):
        unauthenticated = httpx.post(f"{metrics_gateway.base_url}/v1/chat/completions", json=chat_body())
        assert unauthenticated.status_code == 401
    after = scrape_written(metrics_gateway, before, "mesh_requests_total", 10)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    served = {"model": "openai/gpt-4o-mini", "provider": "openai"}
    assert delta("mesh_requests_total", status="200", tenant="acme", **served) == 6
    assert delta("mesh_requests_total", status="200", tenant="other", **served) == 1
    assert delta("mesh_requests_total", status="404", error_code="model_not_found", tenant="acme") == 1
    assert delta("mesh_requests_total", status="401", error_code="unauthorized") == 2
    assert delta("mesh_requests_total") == 10
    assert delta("mesh_request_duration_seconds_count", **served) == 7
    prompt = sum(answer.json()["usage"]["prompt_tokens"] for answer in answers)
    completion = sum(answer.json()["usage"]["completion_tokens"] for answer in answers)
    assert delta("mesh_tokens_total", kind="prompt", tenant="acme") == prompt
    assert delta("mesh_tokens_total", kind="completion", tenant="acme") == completion
    assert delta("mesh_cost_usd_total", tenant="acme") > 0
    assert total(after, "mesh_in_flight", kind="requests") == 0
    # Tenant labels are bounded: globex was not opted in, so it is "other", never its own name.
    tenants = {dict(labels).get("tenant") for (_, labels) in after} - {None}
    assert tenants <= {"acme", "other", "none"}
    assert "globex" not in tenants


def test_a_streamed_request_observes_its_time_to_first_token(
    metrics_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    before = scrape(metrics_gateway)
    with httpx.stream(
        "POST",
        f"{metrics_gateway.base_url}/v1/chat/completions",
        json=chat_body(stream=True),
        headers={"Authorization": f"Bearer {acme_key.plaintext}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert "[DONE]" in "".join(response.iter_text())
    name = "mesh_time_to_first_token_seconds_count"
    after = scrape_written(metrics_gateway, before, name, 1)
    labels = {"model": "openai/gpt-4o-mini", "provider": "openai"}
    assert total(after, name, **labels) - total(before, name, **labels) == 1
    assert total(after, "mesh_in_flight", kind="streams") == 0


def test_scrape_time_gauges_report_the_shared_state(metrics_gateway: GatewayServer) -> None:
    samples = scrape(metrics_gateway)
    assert total(samples, "mesh_postgres_up") == 1
    assert total(samples, "mesh_redis_up") == 1
    assert ("mesh_ledger_unflushed_events", frozenset()) in samples
    assert total(samples, "mesh_ledger_oldest_unflushed_age_seconds") >= 0
    assert ("mesh_celery_queue_depth", frozenset({("queue", "celery")})) in samples


def access_lines(server: GatewayServer, request_id: str) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{") and request_id in line:
            lines.append(orjson.loads(line))
    return lines


def test_each_request_leaves_one_json_access_line_without_its_prompt(
    metrics_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    answer = chat(metrics_gateway, acme_key, session_id="s-1")
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-Id"]
    lines = access_lines(metrics_gateway, request_id)
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "request"
    assert line["tenant"] == "acme"
    assert line["key_prefix"] == acme_key.api_key.prefix
    assert acme_key.plaintext.startswith(line["key_prefix"])
    assert line["model_requested"] == line["model_served"] == "openai/gpt-4o-mini"
    assert line["provider"] == "openai"
    assert line["status"] == 200
    assert line["error_code"] is None
    assert line["latency_ms"] >= 0
    assert line["prompt_tokens"] == answer.json()["usage"]["prompt_tokens"]
    assert line["completion_tokens"] == answer.json()["usage"]["completion_tokens"]
    assert float(line["cost_usd"]) > 0
    assert "ts" in line
    output = metrics_gateway.output()
    assert PROMPT not in output
    assert answer.json()["choices"][0]["message"]["content"] not in output
    assert acme_key.plaintext not in output


def test_a_refused_request_logs_its_error_code(metrics_gateway: GatewayServer, acme_key: CreatedKey) -> None:
    answer = chat(metrics_gateway, acme_key, model="openai/no-such-model")
    assert answer.status_code == 404
    (line,) = access_lines(metrics_gateway, answer.headers["X-Request-Id"])
    assert line["status"] == 404
    assert line["error_code"] == "model_not_found"
    assert line["model_requested"] == "openai/no-such-model"
    assert line["model_served"] is None


def test_the_grafana_dashboard_uses_only_names_metrics_serves(
    metrics_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    with httpx.stream(
        "POST",
        f"{metrics_gateway.base_url}/v1/chat/completions",
        json=chat_body(stream=True),
        headers={"Authorization": f"Bearer {acme_key.plaintext}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        response.read()
    served = {name for name, _ in scrape(metrics_gateway)}
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\bmesh_[a-z_]+", expr)}
    assert len(used) >= 14
    # What no request here touched (retries, refusals…) has no sample yet: it must be defined.
    defined = set()
    for metric in vars(gateway_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
                defined |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    assert used <= served | defined
    assert {"mesh_requests_total", "mesh_time_to_first_token_seconds_bucket", "mesh_tokens_total"} <= served


def test_a_stopped_worker_writes_the_samples_it_had_not_written_yet(
    simulator: SimulatorServer, metrics_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    """Its writer would wait a minute; the drain at SIGTERM writes them before the worker exits."""
    env = gateway_env(simulator, MESH_METRICS_TOKEN=TOKEN, MESH_METRICS_FLUSH_S="60", MESH_DRAIN_NOTICE_S="0")
    server = GatewayServer(env=env, workers=2)  # spawned workers: no atexit, the drain must write them
    server.start()
    try:
        answers = [chat(server, acme_key) for _ in range(3)]
        assert all(answer.status_code == 200 for answer in answers)
    finally:
        server.stop()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=server.metrics_dir)  # type: ignore[no-untyped-call]
    written = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    assert total(written, "mesh_requests_total", status="200") == 3
    prompt = sum(answer.json()["usage"]["prompt_tokens"] for answer in answers)
    assert total(written, "mesh_tokens_total", kind="prompt") == prompt
