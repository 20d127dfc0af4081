"""pydantic-ai with its OpenAI Responses model (what it recommends for OpenAI now): text, streamed
text with usage, a tool it calls itself, structured output, on a native OpenAI model and on
translated Anthropic and Gemini ones (POST /v1/responses, translated to their APIs)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from keys.services import CreatedKey
from tests.clients.conftest import Weather
from tests.responses_api.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL

MODELS = [OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL]


@pytest.fixture
def mesh(providers_url: str, acme_key: CreatedKey) -> tuple[str, str]:
    return providers_url, acme_key.plaintext


def model(mesh: tuple[str, str], name: str) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(name, provider=OpenAIProvider(base_url=mesh[0], api_key=mesh[1]))


@pytest.mark.parametrize("name", MODELS)
def test_text_and_usage(mesh: tuple[str, str], name: str) -> None:
    result = Agent(model(mesh, name)).run_sync("Say hi")
    assert "Simulated reply" in result.output
    assert result.usage.total_tokens > 0


@pytest.mark.parametrize("name", MODELS)
def test_streamed_text(mesh: tuple[str, str], name: str) -> None:
    async def run() -> tuple[str, int]:
        agent = Agent(model(mesh, name))
        async with agent.run_stream("Say hi") as stream:
            text = "".join([delta async for delta in stream.stream_text(delta=True)])
            return text, stream.usage.total_tokens

    text, tokens = asyncio.run(run())
    assert "Simulated reply" in text and tokens > 0


@pytest.mark.parametrize("name", MODELS)
def test_tool_round_trip(mesh: tuple[str, str], name: str) -> None:
    agent = Agent(model(mesh, name))
    calls: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"18C and sunny in {city}"

    result = agent.run_sync("What's the weather in Paris?")
    assert calls == ["Paris"]
    assert "18C and sunny in Paris" in result.output


@pytest.mark.parametrize("name", MODELS)
def test_structured_output(mesh: tuple[str, str], name: str) -> None:
    result = Agent(model(mesh, name), output_type=Weather).run_sync("Weather in Paris?")
    assert isinstance(result.output, Weather) and result.output.wind is not None
