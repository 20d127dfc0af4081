"""The simulator's Anthropic Messages and Gemini generateContent wire formats, spoken over raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from simulator.server import SimulatorServer

ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "gemini-test"}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def upstream(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    simulator.reset()
    with httpx.Client(base_url=simulator.base_url, timeout=10) as client:
        yield client


def sse_events(body: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    events = []
    for frame in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, None
        for line in frame.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = orjson.loads(line[6:])
        if data is not None:
            events.append((name, data))
    return events


def test_anthropic_message_reports_cache_reads_apart_from_input(upstream: httpx.Client) -> None:
    response = upstream.post(
        "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "system": "Be brief",
            "messages": [{"role": "user", "content": "Hello there"}],
            "mock": {"cached_tokens": 3},
        },
    )

    message = response.json()
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    assert (message["type"], message["role"], message["model"]) == (
        "message",
        "assistant",
        "claude-sonnet-4-5",
    )
    assert message["content"] == [
        {"type": "text", "text": "Simulated reply: Hello there lorem ipsum dolor sit"}
    ]
    assert message["stop_reason"] == "end_turn"
    # 4 words + 3 per message = 7 prompt tokens, of which 3 were cache reads.
    assert message["usage"]["input_tokens"] == 4
    assert message["usage"]["cache_read_input_tokens"] == 3
    assert message["usage"]["output_tokens"] == 8


def test_anthropic_stream_follows_the_event_sequence(upstream: httpx.Client) -> None:
    response = upstream.post(
        "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
            "mock": {"chunks": 3},
        },
    )

    events = sse_events(response.content)
    names = [name for name, _ in events]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "Simulated reply: Hi"
    assert events[-2][1]["usage"] == {"output_tokens": 3}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_tool_use_then_tool_result(upstream: httpx.Client) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": CITY_SCHEMA}]
    asked = upstream.post(
        "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "tools": tools,
            "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
        },
    ).json()
    (tool_use,) = asked["content"]
    answered = upstream.post(
        "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "tools": tools,
            "messages": [
                {"role": "user", "content": "What's the weather in Paris?"},
                {"role": "assistant", "content": [tool_use]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "Sunny, 21C"}
                    ],
                },
            ],
        },
    ).json()

    assert asked["stop_reason"] == "tool_use"
    assert tool_use["type"] == "tool_use" and tool_use["id"].startswith("toolu_")
    assert (tool_use["name"], tool_use["input"]) == ("get_weather", {"city": "Paris"})
    assert answered["stop_reason"] == "end_turn"
    assert "Sunny, 21C" in answered["content"][0]["text"]


def test_anthropic_without_api_key_is_authentication_error(upstream: httpx.Client) -> None:
    response = upstream.post(
        "/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []}
    )

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_anthropic_scripted_overload_uses_anthropic_error_shape(
    upstream: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="claude-sonnet-4-5", status=529)

    response = upstream.post(
        "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
    )

    assert response.status_code == 529
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "overloaded_error"


def test_gemini_generate_content(upstream: httpx.Client) -> None:
    response = upstream.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        headers=GEMINI_HEADERS,
        json={
            "systemInstruction": {"parts": [{"text": "Be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
            "generationConfig": {"maxOutputTokens": 4},
        },
    )

    body = response.json()
    (candidate,) = body["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "Simulated reply: Hello there"}]}
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert body["usageMetadata"]["promptTokenCount"] == 2 + 2 + 3
    assert body["usageMetadata"]["candidatesTokenCount"] == 4
    assert body["modelVersion"] == "gemini-2.5-flash"


def test_gemini_sse_stream_ends_with_finish_reason_and_usage(upstream: httpx.Client) -> None:
    response = upstream.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        params={"alt": "sse"},
        headers=GEMINI_HEADERS,
        json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "mock": {"chunks": 3}},
    )

    chunks = [data for _, data in sse_events(response.content)]
    text = "".join(part.get("text", "") for c in chunks for part in c["candidates"][0]["content"]["parts"])
    assert response.headers["content-type"].startswith("text/event-stream")
    assert text == "Simulated reply: Hi"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 3


def test_gemini_function_call_with_forced_mode(upstream: httpx.Client, simulator: SimulatorServer) -> None:
    response = upstream.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": "gemini-test"},
        json={
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "lookup_city", "parameters": CITY_SCHEMA}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
    )

    part = response.json()["candidates"][0]["content"]["parts"][0]
    assert part == {"functionCall": {"name": "lookup_city", "args": {"city": "Paris"}}}
    assert simulator.requests()[-1]["query"] == "key=gemini-test"


def test_gemini_without_key_is_permission_denied(upstream: httpx.Client) -> None:
    response = upstream.post("/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": []})

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
