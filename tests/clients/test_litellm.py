"""litellm as a client library: it strips its own `openai/` prefix before calling an
OpenAI-compatible api_base, so the gateway sees the bare name `gpt-4o-mini` and resolves it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import litellm
import pytest
from litellm.exceptions import AuthenticationError, BadRequestError, NotFoundError

from simulator.server import SimulatorServer
from tests.clients.conftest import MODEL, WEATHER_TOOL, Weather

QUESTION = [{"role": "user", "content": "What's the weather in Paris?"}]


def complete(mesh: tuple[str, str], **kwargs: Any) -> Any:
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hi"}])
    return litellm.completion(model=MODEL, api_base=mesh[0], api_key=mesh[1], num_retries=0, **kwargs)


def test_plain_reaches_the_catalog_model_by_its_bare_name(
    mesh: tuple[str, str], simulator: SimulatorServer
) -> None:
    reply = complete(mesh)
    assert reply.choices[0].message.content
    assert reply.usage.total_tokens > 0
    assert simulator.requests()[-1]["body"]["model"] == "gpt-4o-mini"  # not openai/openai/…


def test_stream_with_usage(mesh: tuple[str, str]) -> None:
    chunks = list(complete(mesh, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Simulated reply")
    assert any(getattr(c, "usage", None) and c.usage.total_tokens > 0 for c in chunks)


def test_async(mesh: tuple[str, str]) -> None:
    async def run() -> str:
        reply = await litellm.acompletion(
            model=MODEL, api_base=mesh[0], api_key=mesh[1], messages=[{"role": "user", "content": "hi"}]
        )
        return str(reply.choices[0].message.content)

    assert asyncio.run(run())


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(mesh: tuple[str, str], stream: bool) -> None:
    first = complete(mesh, messages=QUESTION, tools=[WEATHER_TOOL], stream=stream)
    if stream:
        first = litellm.stream_chunk_builder(list(first), messages=QUESTION)
    message = first.choices[0].message
    call = message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    history = [*QUESTION, message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
    second = complete(mesh, messages=history, tools=[WEATHER_TOOL])
    assert "18C" in second.choices[0].message.content


def test_structured_output(mesh: tuple[str, str]) -> None:
    reply = complete(
        mesh, messages=[{"role": "user", "content": "Weather in Paris?"}], response_format=Weather
    )
    weather = Weather.model_validate_json(reply.choices[0].message.content)
    assert weather.wind is not None


def test_errors(mesh: tuple[str, str]) -> None:
    with pytest.raises(AuthenticationError):
        complete((mesh[0], "rsk_wrong"))
    with pytest.raises(NotFoundError):
        litellm.completion(
            model="openai/no-such-model",
            api_base=mesh[0],
            api_key=mesh[1],
            messages=[{"role": "user", "content": "x"}],
        )
    with pytest.raises(BadRequestError) as invalid:  # litellm's class for every 4xx it cannot name
        complete(mesh, temperature=5)
    assert int(getattr(invalid.value, "status_code", 0)) == 422 and "temperature" in str(invalid.value)
