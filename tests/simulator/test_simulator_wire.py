"""The upstream simulator speaks OpenAI's wire format well enough for the official SDK, faults included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from simulator.server import SimulatorServer

WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def upstream(simulator: SimulatorServer) -> SimulatorServer:
    simulator.reset()
    return simulator


@pytest.fixture
def client(upstream: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=upstream.openai_base_url,
        api_key="sk-upstream-test",
        max_retries=0,
        timeout=10,
    )


def test_plain_completion_is_deterministic_and_counts_tokens(
    client: openai.OpenAI, upstream: SimulatorServer
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Tell me about distributed systems"}],
    )

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Simulated reply: Tell me about distributed systems lorem"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        5 + 3,
        8,
    )
    assert completion.usage.total_tokens == 16
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    (received,) = upstream.requests()
    assert received["path"] == "/v1/chat/completions"
    assert received["headers"]["authorization"] == "Bearer sk-upstream-test"
    assert received["body"]["messages"] == [{"role": "user", "content": "Tell me about distributed systems"}]


def test_streaming_with_include_usage_ends_with_a_usage_chunk(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"chunks": 20, "cached_tokens": 2}},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(contents) == 20
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (4, 20)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 2


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hi"}],
        max_completion_tokens=3,
    )

    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Simulated reply: Hi"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_tool_call_streams_as_openai_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = list(stream)

    first_call = chunks[0].choices[0].delta.tool_calls
    assert first_call is not None
    assert (first_call[0].index, first_call[0].type) == (0, "function")
    assert first_call[0].id is not None and first_call[0].id.startswith("call_")
    assert first_call[0].function is not None and first_call[0].function.name == "get_weather"
    fragments = [
        call.function.arguments
        for chunk in chunks[1:]
        if chunk.choices and chunk.choices[0].delta.tool_calls
        for call in chunk.choices[0].delta.tool_calls
        if call.function and call.function.arguments
    ]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == {"location": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_result_is_quoted_in_the_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"temperature": 21}',
            },
        ],
    )

    assert completion.choices[0].finish_reason == "stop"
    assert '{"temperature": 21}' in (completion.choices[0].message.content or "")


def test_scripted_500_is_consumed_once_for_its_model(
    client: openai.OpenAI, upstream: SimulatorServer
) -> None:
    upstream.script(model="gpt-4o", times=1, status=500, error_message="boom")

    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    ok = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])

    assert raised.value.status_code == 500
    assert raised.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert ok.choices[0].finish_reason == "stop"


def test_mocked_429_carries_retry_after(upstream: SimulatorServer) -> None:
    response = httpx.post(
        f"{upstream.openai_base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-x"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "mock": {"status": 429, "retry_after": 7},
        },
    )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_drop_after_chunks_breaks_the_stream_client_side(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        extra_body={"mock": {"chunks": 10, "drop_after_chunks": 3}},
    )
    received: list[str] = []

    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert "".join(received) == "Simulated reply: Hi"


def test_missing_bearer_token_is_401_in_openai_format(
    upstream: SimulatorServer,
) -> None:
    response = httpx.post(
        f"{upstream.openai_base_url}/chat/completions",
        json={"model": "gpt-4o", "messages": []},
    )

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_unparseable_body_is_400(upstream: SimulatorServer) -> None:
    response = httpx.post(
        f"{upstream.openai_base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-x", "Content-Type": "application/json"},
        content=b"{not json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_malformed_mock_returns_a_non_json_200(client: openai.OpenAI) -> None:
    with pytest.raises((json.JSONDecodeError, openai.APIError)):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Hi"}],
            extra_body={"mock": {"malformed": True}},
        )


def test_models_list_has_openai_shape(client: openai.OpenAI) -> None:
    models = client.models.list()

    assert "gpt-4o" in {m.id for m in models.data}


def test_client_disconnect_shows_in_the_request_log(upstream: SimulatorServer) -> None:
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{upstream.openai_base_url}/chat/completions",
            headers={"Authorization": "Bearer sk-x"},
            json={
                "model": "gpt-4o",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
                "mock": {"chunks": 50, "chunk_delay_ms": 40},
            },
        ) as response,
    ):
        next(response.iter_bytes())

    deadline = time.monotonic() + 5
    while upstream.requests()[-1]["outcome"] != "client_disconnected" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.requests()[-1]["outcome"] == "client_disconnected"
    assert upstream.requests()[-1]["chunks_sent"] < 50


def test_rule_without_model_applies_to_any_model_until_reset(
    client: openai.OpenAI, upstream: SimulatorServer
) -> None:
    upstream.script(model=None, times=None, status=503)

    for model in ("gpt-4o", "gpt-4o-mini"):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    upstream.reset()

    assert client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
    ).choices


def test_unknown_mock_key_is_a_400_naming_it(upstream: SimulatorServer) -> None:
    response = httpx.post(
        f"{upstream.openai_base_url}/chat/completions",
        headers={"Authorization": "Bearer sk-x"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "mock": {"chunk": 3}},
    )

    assert response.status_code == 400
    assert "chunk" in response.json()["error"]["message"]
