"""openai-agents with its default model, the Responses API one (`OpenAIResponsesModel`): a two-tool
agent loop, streamed runs, and a second turn continued by `previous_response_id`."""

from __future__ import annotations

import asyncio
import json

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from simulator.server import SimulatorServer
from tests.clients.conftest import MODEL

set_tracing_disabled(True)

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    calls.append(f"weather:{city}")
    return f"18C and sunny in {city}"


@function_tool
def get_local_time(city: str) -> str:
    """The local time in a city."""
    calls.append(f"time:{city}")
    return f"It is 14:05 in {city}"


def agent(mesh: tuple[str, str]) -> Agent[None]:
    client = AsyncOpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0)
    return Agent(
        name="concierge",
        instructions="Use the tools.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather, get_local_time],
    )


def test_two_tool_agent_loop_over_two_turns(mesh: tuple[str, str], simulator: SimulatorServer) -> None:
    """Each turn the model calls the tool the user names, the agent runs it and sends its output
    back; the second turn continues the first by id, so the gateway rebuilds the conversation."""
    calls.clear()

    async def run() -> tuple[str, str, str | None]:
        concierge = agent(mesh)
        first = await Runner.run(concierge, "Use get_local_time for Paris")
        second = await Runner.run(
            concierge, "Now the weather in Paris?", previous_response_id=first.last_response_id
        )
        return str(first.final_output), str(second.final_output), first.last_response_id

    first, second, first_id = asyncio.run(run())
    assert len(calls) == 2 and calls[0].startswith("time:") and calls[1].startswith("weather:")
    assert "It is 14:05 in" in first and "18C and sunny in" in second
    assert first_id is not None and first_id.startswith("resp_")
    last_call = simulator.requests()[-1]
    assert last_call["path"] == "/v1/responses"  # openai/* is asked natively
    sent = json.dumps(last_call["body"]["input"])
    assert "Use get_local_time for Paris" in sent and "It is 14:05 in" in sent  # the first turn, rebuilt
    last_item = last_call["body"]["input"][-1]
    assert last_item["type"] == "function_call_output" and "18C and sunny in" in last_item["output"]


def test_streamed_run_with_a_tool(mesh: tuple[str, str]) -> None:
    calls.clear()

    async def run() -> tuple[str, list[str]]:
        streamed = Runner.run_streamed(agent(mesh), "What's the weather in Oslo?")
        kinds: list[str] = [event.type async for event in streamed.stream_events()]
        return str(streamed.final_output), kinds

    final, kinds = asyncio.run(run())
    assert len(calls) == 1 and calls[0].startswith("weather:")
    assert "18C and sunny in" in final
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
