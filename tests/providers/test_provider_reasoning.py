"""Thinking and prompt caching: `reasoning_effort` becomes a thinking budget, thinking comes back as
`reasoning_content` and `thinking_blocks` (and goes back unchanged), Gemini's thought signatures
ride on the tool call, and Anthropic's cache writes are billed at their own price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from routing.models import CatalogModel
from simulator.server import SimulatorServer
from tests.providers.conftest import WEATHER_TOOL, upstream_calls
from tests.usage.conftest import ledger_events

QUESTION = [{"role": "user", "content": "What's the weather in Paris?"}]


def test_anthropic_reasoning_effort_thinks_and_the_thinking_goes_back_unchanged(
    client: Any, simulator: SimulatorServer
) -> None:
    first = client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        max_tokens=4000,
    )
    sent = upstream_calls(simulator)[-1]["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    message: Any = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"]
    (block,) = message["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"]
    client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=[
            *QUESTION,
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18C"},
        ],
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        max_tokens=4000,
    )
    history = upstream_calls(simulator)[-1]["body"]["messages"][1]["content"]
    assert history[0] == block  # signature and text byte for byte
    assert history[1]["type"] == "tool_use"


def test_anthropic_streamed_thinking(client: Any) -> None:
    stream = client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=[{"role": "user", "content": "hi"}],
        reasoning_effort="medium",
        max_tokens=9000,
        stream=True,
    )
    reasoning, text = "", ""
    blocks: list[Any] = []
    for chunk in stream:
        if not chunk.choices:
            continue
        delta: Any = chunk.choices[0].delta.model_dump()
        reasoning += delta.get("reasoning_content") or ""
        blocks += delta.get("thinking_blocks") or []
        text += delta.get("content") or ""
    assert reasoning and text.startswith("Simulated reply")
    assert blocks == [{"type": "thinking", "thinking": reasoning, "signature": blocks[0]["signature"]}]


def test_a_model_that_cannot_think_ignores_reasoning_effort(client: Any, simulator: SimulatorServer) -> None:
    client.chat.completions.create(
        model="anthropic/claude-3-5-haiku-latest",
        messages=[{"role": "user", "content": "hi"}],
        reasoning_effort="high",
    )
    assert "thinking" not in upstream_calls(simulator)[-1]["body"]


def test_gemini_thought_signature_rides_on_the_tool_call_and_comes_back(
    client: Any, simulator: SimulatorServer
) -> None:
    first = client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
    )
    message: Any = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"]  # includeThoughts: the thought summary
    call = message["tool_calls"][0]
    signature = call["thought_signature"]
    assert signature and first.usage.completion_tokens_details.reasoning_tokens > 0
    client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[
            *QUESTION,
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 18}'},
        ],
        tools=[WEATHER_TOOL],
    )
    contents = upstream_calls(simulator)[-1]["body"]["contents"]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": orjson.loads(call["function"]["arguments"])},
            "thoughtSignature": signature,
        }
    ]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]


def test_gemini_streamed_tool_call_keeps_its_signature(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        reasoning_effort="low",
        stream=True,
    )
    calls = [tc.model_dump() for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or ())]
    assert len(calls) == 1 and calls[0]["thought_signature"]


def test_anthropic_cache_reads_and_writes_are_priced_apart(client: Any, simulator: SimulatorServer) -> None:
    mock = {
        "prompt_tokens": 10_000,
        "completion_tokens": 200,
        "cached_tokens": 6_000,
        "cache_write_tokens": 3_000,
    }
    simulator.script(model="claude-sonnet-4-5", **mock)
    response = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-sonnet-4-5",
        messages=[{"role": "user", "content": "hi"}],
    )
    usage: Any = response.parse().usage
    assert usage.prompt_tokens == 10_000
    assert usage.prompt_tokens_details.cached_tokens == 6_000
    assert usage.prompt_tokens_details.model_dump()["cache_write_tokens"] == 3_000
    request_id = response.headers["x-request-id"]
    event = ledger_events([request_id])[request_id]
    row = CatalogModel.objects.get(model_id="anthropic/claude-sonnet-4-5")
    assert row.cache_write_per_mtok_usd == Decimal("3.75")
    assert row.cached_input_per_mtok_usd is not None
    expected = (
        1_000 * row.input_per_mtok_usd
        + 6_000 * row.cached_input_per_mtok_usd
        + 3_000 * row.cache_write_per_mtok_usd
        + 200 * row.output_per_mtok_usd
    ) / 1_000_000
    assert event.cost_usd == expected
    assert (event.prompt_tokens, event.cached_tokens) == (10_000, 6_000)
