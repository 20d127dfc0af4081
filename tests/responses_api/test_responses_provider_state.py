"""What a translated provider needs back on the next turn survives a Responses conversation:
Anthropic's signed thinking blocks (on the reasoning item) and Gemini's thought signatures (on the
function call), whether the first turn was streamed or not, continued by previous_response_id."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import OpenAI

from simulator.server import SimulatorServer
from tests.responses_api.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, WEATHER_TOOL

ASK = "What's the weather in Paris?"


def _posts(simulator: SimulatorServer) -> list[dict[str, Any]]:
    return [r for r in simulator.requests() if r["method"] == "POST"]


def _first_turn(acme: OpenAI, model: str, *, stream: bool) -> Any:
    params: Any = {
        "model": model,
        "input": ASK,
        "tools": [WEATHER_TOOL],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
    }
    if not stream:
        return acme.responses.create(**params)
    with acme.responses.stream(**params) as events:
        return events.get_final_response()


def _continue(acme: OpenAI, model: str, first: Any) -> None:
    [call] = [item for item in first.output if item.type == "function_call"]
    acme.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        tools=[WEATHER_TOOL],
        reasoning={"effort": "low"},
        max_output_tokens=4000,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_thinking_goes_back_signed(acme: OpenAI, simulator: SimulatorServer, stream: bool) -> None:
    first = _first_turn(acme, ANTHROPIC_MODEL, stream=stream)
    [reasoning] = [item.to_dict() for item in first.output if item.type == "reasoning"]
    (block,) = reasoning["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"] and reasoning["summary"][0]["text"]
    _continue(acme, ANTHROPIC_MODEL, first)
    assistant = _posts(simulator)[-1]["body"]["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == block and assistant["content"][1]["type"] == "tool_use"


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_thought_signature_rides_on_the_function_call(
    acme: OpenAI, simulator: SimulatorServer, stream: bool
) -> None:
    first = _first_turn(acme, GEMINI_MODEL, stream=stream)
    [call] = [item.to_dict() for item in first.output if item.type == "function_call"]
    assert call["thought_signature"]
    _continue(acme, GEMINI_MODEL, first)
    contents = _posts(simulator)[-1]["body"]["contents"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": orjson.loads(call["arguments"])},
            "thoughtSignature": call["thought_signature"],
        }
    ]
