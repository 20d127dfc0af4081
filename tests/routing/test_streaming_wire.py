"""SSE on the wire: framing, chunk-by-chunk flushing, usage, mid-stream failures and client disconnects."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from httpx_sse import connect_sse

from simulator.server import SimulatorServer
from tests.conftest import chat_body


def read_events(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    with connect_sse(client, "POST", "/chat/completions", json=body) as source:
        events = [event.data for event in source.iter_sse()]
        return source.response, events


def test_stream_is_sse_of_chunks_ending_with_done(acme_http: httpx.Client) -> None:
    response, events = read_events(acme_http, chat_body(stream=True, mock={"chunks": 4}))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "openai/gpt-4o-mini" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # The client did not ask for usage: no usage chunk, no usage values (Mesh still asked upstream).
    assert all(c.get("usage") is None for c in chunks)


def test_usage_chunk_only_when_client_asks(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    _, events = read_events(
        acme_http, chat_body(stream=True, stream_options={"include_usage": True}, mock={"chunks": 3})
    )
    last = orjson.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3
    read_events(acme_http, chat_body(stream=True, mock={"chunks": 3}))
    upstream_body = simulator.requests()[-1]["body"]
    assert upstream_body["stream_options"] == {"include_usage": True}


def test_chunks_are_flushed_as_the_upstream_produces_them(acme_http: httpx.Client) -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    body = chat_body(stream=True, mock={"chunks": 5, "chunk_delay_ms": 300})
    with connect_sse(acme_http, "POST", "/chat/completions", json=body) as source:
        for event in source.iter_sse():
            if event.data != "[DONE]" and orjson.loads(event.data)["choices"]:
                arrivals.append(time.monotonic() - started)
    assert arrivals[0] < 0.5, arrivals  # first token long before the stream ends
    assert arrivals[-1] - arrivals[0] > 1.0, arrivals  # spread out, not one buffered burst


def test_upstream_failure_after_first_byte_ends_with_error_chunk(acme_http: httpx.Client) -> None:
    response, events = read_events(
        acme_http, chat_body(stream=True, mock={"chunks": 10, "drop_after_chunks": 3})
    )
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    final = orjson.loads(events[-2])
    assert final["choices"][0]["finish_reason"] == "error"
    assert final["error"]["code"] == "upstream_error"
    assert final["error"]["provider_error"]["provider"] == "openai"


def test_upstream_error_before_first_byte_is_a_plain_envelope(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(stream=True, mock={"status": 500}))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


def test_client_disconnect_cancels_the_upstream_request(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    body = chat_body(stream=True, mock={"chunks": 100, "chunk_delay_ms": 50})
    with acme_http.stream("POST", "/chat/completions", json=body) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if simulator.requests()[-1]["outcome"] == "client_disconnected":
            break
        time.sleep(0.05)
    entry = simulator.requests()[-1]
    assert entry["outcome"] == "client_disconnected"
    assert entry["chunks_sent"] < 100


def test_models_fallback_skips_a_failing_upstream(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=1, status=503)
    response = acme_http.post(
        "/chat/completions", json=chat_body(model="openai/gpt-4o", models=["openai/gpt-4o-mini"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openai/gpt-4o-mini"
    assert [r["body"]["model"] for r in simulator.requests()] == ["gpt-4o", "gpt-4o-mini"]
    assert "models" not in simulator.requests()[-1]["body"]


def test_models_fallback_does_not_retry_a_client_error(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=1, status=400)
    response = acme_http.post(
        "/chat/completions", json=chat_body(model="openai/gpt-4o", models=["openai/gpt-4o-mini"])
    )
    assert response.status_code == 400  # the upstream's own 400 keeps its status
    assert len(simulator.requests()) == 1


def test_streaming_fallback_happens_before_the_first_byte(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=1, status=429)
    _, events = read_events(
        acme_http, chat_body(model="openai/gpt-4o", models=["openai/gpt-4o-mini"], stream=True)
    )
    assert orjson.loads(events[0])["model"] == "openai/gpt-4o-mini"
    assert events[-1] == "[DONE]"


def test_events_and_characters_split_across_reads_arrive_whole(acme_http: httpx.Client) -> None:
    """An upstream with CRLF line endings whose bytes arrive 7 at a time, cutting events, lines
    and multi-byte UTF-8 characters apart: the client still gets every event and every character."""
    text = "Grüße aus Köln 🌍 — naïve café, 東京 ✓"
    mock = {"content": text, "crlf": True, "split_bytes": 7, "chunk_delay_ms": 1}
    body = chat_body(stream=True, stream_options={"include_usage": True}, mock=mock)
    response, events = read_events(acme_http, body)
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert streamed == text
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["model"] == "openai/gpt-4o-mini" for c in chunks)
