"""The official openai SDK, sync and async: plain, streamed with usage, tool round trips,
structured output (`.parse`), error classes, and the models endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from simulator.server import SimulatorServer
from tests.clients.conftest import MODEL, WEATHER_TOOL, Weather

ASK_WEATHER: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.fixture
def client(mesh: tuple[str, str]) -> Any:
    with OpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0) as sdk:
        yield sdk


def test_plain_and_streamed_with_usage(client: OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}])
    assert plain.choices[0].message.content and plain.model == MODEL and plain.usage
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_async_plain_stream_and_tools(mesh: tuple[str, str]) -> None:
    async def run() -> tuple[str, str, str]:
        async with AsyncOpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0) as sdk:
            plain = await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            stream = await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            tools = await sdk.chat.completions.create(
                model=MODEL,
                messages=ASK_WEATHER,
                tools=[WEATHER_TOOL],
            )
            calls = tools.choices[0].message.tool_calls or []
            return plain.choices[0].message.content or "", "".join(parts), calls[0].function.name  # type: ignore[union-attr]

    plain, streamed, tool = asyncio.run(run())
    assert plain and plain == streamed and tool == "get_weather"


def test_tool_round_trip(client: OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER_TOOL],
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    second = client.chat.completions.create(
        model=MODEL,
        messages=[
            *ASK_WEATHER,
            cast(Any, first.choices[0].message.model_dump(exclude_none=True)),
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert "18C and sunny" in (second.choices[0].message.content or "")


def test_streamed_tool_call_assembles(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()
    call = (final.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_structured_output_parse(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], response_format=Weather
    )
    weather = completion.choices[0].message.parsed
    assert isinstance(weather, Weather) and weather.wind is not None
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], response_format=Weather
    ) as stream:
        streamed = stream.get_final_completion().choices[0].message.parsed
    assert streamed == weather


def test_error_classes(client: OpenAI, mesh: tuple[str, str], simulator: SimulatorServer) -> None:
    stranger = OpenAI(base_url=mesh[0], api_key="rsk_not-a-real-key", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="openai/no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=5
        )
    assert invalid.value.body["details"][0]["loc"] == ["body", "temperature"]  # type: ignore[index]
    assert simulator.requests() == []


def test_models_list_and_retrieve(client: OpenAI) -> None:
    listed = {m.id: m for m in client.models.list()}
    assert MODEL in listed and "openrouter/meta-llama/llama-3.3-70b-instruct" in listed
    retrieved = client.models.retrieve("openrouter/meta-llama/llama-3.3-70b-instruct")
    assert (
        retrieved.id == "openrouter/meta-llama/llama-3.3-70b-instruct" and retrieved.owned_by == "openrouter"
    )
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/no-such-model")
