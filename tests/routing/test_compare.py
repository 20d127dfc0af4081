"""POST /v1/compare over the real HTTP interface: several models side by side, each model's run
billed as its own usage event under the comparison's id."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.usage.conftest import catalog_cost, ledger_events, wait_until
from usage.models import UsageEvent

MINI, FOUR = "openai/gpt-4o-mini", "openai/gpt-4o"


def compare_body(models: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    body = chat_body(**overrides)
    body.pop("model")
    body["models"] = models if models is not None else [MINI, FOUR]
    return body


def sse_events(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def comparison_events(comparison_id: str, count: int) -> list[UsageEvent]:
    def probe() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.filter(comparison_id=comparison_id))
        if len(rows) < count or any(row.provisional for row in rows):
            return None
        return rows

    return wait_until(probe, timeout=10, what=f"{count} events of {comparison_id}")


def test_two_models_answer_side_by_side_each_billed_as_its_own_event(acme_http: httpx.Client) -> None:
    response = acme_http.post("/compare", json=compare_body(session_id="pick-a-model"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "compare" and answer["comparison_id"].startswith("cmp_")
    assert answer["session_id"] == "pick-a-model"
    results = answer["results"]
    assert [r["model"] for r in results] == [MINI, FOUR]
    for result in results:
        assert result["status"] == 200 and result["error"] is None
        completion = result["completion"]
        assert completion["object"] == "chat.completion" and completion["model"] == result["model"]
        assert completion["choices"][0]["message"]["content"]
        assert result["usage"]["prompt_tokens"] == completion["usage"]["prompt_tokens"]
        assert result["usage"]["completion_tokens"] == completion["usage"]["completion_tokens"]
        assert result["latency_ms"] >= 0 and result["ttft_ms"] == result["latency_ms"]
    assert len({r["request_id"] for r in results}) == 2

    events = {e.request_id: e for e in comparison_events(answer["comparison_id"], 2)}
    assert set(events) == {r["request_id"] for r in results}
    for result in results:
        event = events[result["request_id"]]
        usage = result["usage"]
        expected = catalog_cost(result["model"], usage["prompt_tokens"], usage["completion_tokens"])
        assert event.cost_usd == expected == Decimal(result["cost_usd"]) and expected > 0
        assert (event.model_served, event.session_id, event.http_status) == (
            result["model"],
            "pick-a-model",
            200,
        )
    assert Decimal(answer["total_cost_usd"]) == sum(e.cost_usd for e in events.values())
    # The compare's own request id is not an event of its own: only the runs are billed.
    assert not UsageEvent.objects.filter(request_id=response.headers["X-Request-Id"]).exists()


def test_one_model_failing_does_not_fail_the_others(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=None, status=400, error_message="prompt is too long")
    response = acme_http.post("/compare", json=compare_body())
    assert response.status_code == 200, response.text
    ok, failed = response.json()["results"]
    assert ok["status"] == 200 and ok["completion"]["choices"]
    assert failed["status"] == 400 and failed["completion"] is None and failed["usage"] is None
    assert failed["error"]["code"] and failed["error"]["provider_error"]["message"] == "prompt is too long"
    assert failed["error"]["type"] == "invalid_request_error" and failed["cost_usd"] == "0"
    events = {e.request_id: e for e in comparison_events(response.json()["comparison_id"], 2)}
    assert events[failed["request_id"]].http_status == 400 and events[failed["request_id"]].cost_usd == 0
    assert events[ok["request_id"]].http_status == 200


def test_streamed_comparison_tags_every_chunk_with_its_model(acme_http: httpx.Client) -> None:
    body = compare_body(stream=True, mock={"chunks": 4})
    response = acme_http.post("/compare", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    events = sse_events(response.text)
    chunks = [e for e in events if e["object"] == "compare.chunk"]
    for model in (MINI, FOUR):
        mine = [e["chunk"] for e in chunks if e["model"] == model]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in mine if c["choices"])
        assert len(text.split()) == 4
        assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in mine)
    summary = events[-1]
    assert summary["object"] == "compare.summary" and [r["model"] for r in summary["results"]] == [MINI, FOUR]
    rows = {e.request_id: e for e in comparison_events(summary["comparison_id"], 2)}
    for result in summary["results"]:
        event = rows[result["request_id"]]
        assert event.streamed and event.http_status == 200 and event.completion_tokens == 4
        assert result["usage"]["completion_tokens"] == 4 and Decimal(result["cost_usd"]) == event.cost_usd
        assert result["ttft_ms"] is not None and result["ttft_ms"] <= result["latency_ms"]
    assert {c["request_id"] for c in chunks} == set(rows)


def test_a_client_leaving_mid_stream_bills_every_model_for_what_it_produced(
    api_url: str, acme_key: CreatedKey
) -> None:
    body = compare_body(stream=True, mock={"chunks": 60, "chunk_delay_ms": 40})
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    seen: dict[str, str] = {}
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=30) as client,
        client.stream("POST", "/compare", json=body) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                event = orjson.loads(line[6:])
                seen[event["model"]] = event["request_id"]
            if len(seen) == 2:
                break
    rows = ledger_events(list(seen.values()), timeout=15)
    for row in rows.values():
        assert row.cancelled and row.http_status == 499 and row.error_code == "client_disconnected"
        assert row.prompt_tokens > 0 and row.cost_usd > 0 and row.completion_tokens < 60
        assert row.comparison_id
    assert len({row.comparison_id for row in rows.values()}) == 1
