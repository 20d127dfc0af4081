"""A streamed response is billed once: in full when it completes, and for what was produced when
the client leaves mid-stream (the chat stream beneath it settles on close)."""

from __future__ import annotations

import httpx
import orjson

from simulator.server import SimulatorServer
from tests.responses_api.conftest import OPENAI_MODEL
from tests.usage.conftest import catalog_cost, ledger_events, wait_until


def _events(lines: list[str]) -> list[dict[str, object]]:
    return [orjson.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


def test_completed_stream_is_billed_from_the_upstream_usage(acme_raw: httpx.Client) -> None:
    body = {"model": OPENAI_MODEL, "input": "Say hi", "stream": True}
    with acme_raw.stream("POST", "/responses", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        lines = list(response.iter_lines())
    events = _events(lines)
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(len(events)))
    assert next(line for line in lines if line.startswith("event: ")) == "event: response.created"
    final = events[-1]
    assert final["type"] == "response.completed"
    usage = final["response"]["usage"]  # type: ignore[index]
    row = ledger_events([request_id])[request_id]
    assert (row.http_status, row.streamed, row.cancelled, row.tokens_estimated) == (200, True, False, False)
    assert (row.prompt_tokens, row.completion_tokens) == (usage["input_tokens"], usage["output_tokens"])
    assert row.cost_usd == catalog_cost(OPENAI_MODEL, row.prompt_tokens, row.completion_tokens)


def test_client_leaving_mid_stream_is_billed_for_what_was_produced(
    acme_raw: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(chunks=40, chunk_delay_ms=100)
    body = {"model": OPENAI_MODEL, "input": "Say hi", "stream": True}
    deltas = 0
    with acme_raw.stream("POST", "/responses", json=body) as response:
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line == "event: response.output_text.delta":
                deltas += 1
                if deltas == 3:
                    break
    row = ledger_events([request_id])[request_id]
    assert (row.http_status, row.cancelled, row.streamed) == (499, True, True)
    assert 3 <= row.completion_tokens < 40
    assert row.cost_usd == catalog_cost(OPENAI_MODEL, row.prompt_tokens, row.completion_tokens)
    wait_until(
        lambda: any(r.get("outcome") == "client_disconnected" for r in simulator.requests()),
        timeout=5,
        what="the upstream stream to be closed",
    )
    # A response the client abandoned is not stored.
    assert acme_raw.get(f"/responses/{request_id}").status_code == 404
