"""openai-agents with its chat-completions model: a run, a streamed run, and a function tool
the agent calls and answers from; structured output_type."""

from __future__ import annotations

import asyncio

from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.clients.conftest import MODEL, Weather

set_tracing_disabled(True)

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    calls.append(city)
    return f"18C and sunny in {city}"


def model(mesh: tuple[str, str]) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(
        model=MODEL, openai_client=AsyncOpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0)
    )


def test_run_and_streamed_run(mesh: tuple[str, str]) -> None:
    result = Runner.run_sync(Agent(name="helper", instructions="Be brief.", model=model(mesh)), "Say hi")
    assert str(result.final_output).startswith("Simulated reply")

    async def streamed() -> str:  # a new event loop, so a new client
        agent = Agent(name="helper", instructions="Be brief.", model=model(mesh))
        run = Runner.run_streamed(agent, "Say hi")
        async for _ in run.stream_events():
            pass
        return str(run.final_output)

    assert asyncio.run(streamed()) == result.final_output


def test_function_tool_round_trip(mesh: tuple[str, str]) -> None:
    calls.clear()
    agent = Agent(name="weather", instructions="Use tools.", model=model(mesh), tools=[get_weather])
    result = Runner.run_sync(agent, "What's the weather in Paris?")
    assert calls == ["Paris"]
    assert "18C and sunny in Paris" in str(result.final_output)


def test_structured_output_type(mesh: tuple[str, str]) -> None:
    agent = Agent(name="typed", instructions="Answer as JSON.", model=model(mesh), output_type=Weather)
    result = Runner.run_sync(agent, "Weather in Paris?")
    assert isinstance(result.final_output, Weather) and result.final_output.wind is not None
