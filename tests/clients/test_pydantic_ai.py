"""pydantic-ai with its OpenAI chat model: text, streamed text with usage, a tool it calls
itself, and structured output both as a tool (its default) and as NativeOutput (json_schema)."""

from __future__ import annotations

import asyncio

from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.clients.conftest import MODEL, Weather


def model(mesh: tuple[str, str]) -> OpenAIChatModel:
    return OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=mesh[0], api_key=mesh[1]))


def test_text_and_usage(mesh: tuple[str, str]) -> None:
    result = Agent(model(mesh)).run_sync("Say hi")
    assert result.output.startswith("Simulated reply")
    assert result.usage().total_tokens > 0


def test_streamed_text(mesh: tuple[str, str]) -> None:
    async def run() -> tuple[str, int]:
        agent = Agent(model(mesh))
        async with agent.run_stream("Say hi") as stream:
            text = "".join([delta async for delta in stream.stream_text(delta=True)])
            return text, stream.usage().total_tokens

    text, tokens = asyncio.run(run())
    assert text.startswith("Simulated reply") and tokens > 0


def test_tool_round_trip(mesh: tuple[str, str]) -> None:
    agent = Agent(model(mesh))
    calls: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"18C and sunny in {city}"

    result = agent.run_sync("What's the weather in Paris?")
    assert calls == ["Paris"]
    assert "18C and sunny in Paris" in result.output


def test_structured_output_as_tool_and_native(mesh: tuple[str, str]) -> None:
    as_tool = Agent(model(mesh), output_type=Weather).run_sync("Weather in Paris?")
    assert isinstance(as_tool.output, Weather) and as_tool.output.wind is not None
    native = Agent(model(mesh), output_type=NativeOutput(Weather)).run_sync("Weather in Paris?")
    assert isinstance(native.output, Weather) and native.output.wind is not None
