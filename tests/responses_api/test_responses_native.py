"""`openai/*` models are asked natively at the upstream's /v1/responses: built-in tools pass, the
upstream's usage (reasoning tokens included) is what is billed, the conversation is sent whole
(the upstream stores nothing), and its failures keep their meaning."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from simulator.server import SimulatorServer
from tests.responses_api.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, WEATHER_TOOL
from tests.usage.conftest import catalog_cost, ledger_events


def _posts(simulator: SimulatorServer) -> list[dict[str, Any]]:
    return [r for r in simulator.requests() if r["method"] == "POST"]


def test_built_in_tools_reach_openai(acme: OpenAI, simulator: SimulatorServer) -> None:
    response = acme.responses.create(
        model=OPENAI_MODEL, input="Say hi", tools=[{"type": "web_search"}, WEATHER_TOOL]
    )
    assert response.status == "completed" and response.output_text
    [sent] = _posts(simulator)
    assert sent["path"] == "/v1/responses"
    assert [tool["type"] for tool in sent["body"]["tools"]] == ["web_search", "function"]
    assert sent["body"]["store"] is False and "previous_response_id" not in sent["body"]
    assert sent["body"]["model"] == "gpt-4o-mini"


def test_built_in_tools_are_refused_when_a_fallback_is_not_openai(
    acme: OpenAI, simulator: SimulatorServer
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        acme.responses.create(
            model=OPENAI_MODEL,
            input="Say hi",
            tools=[{"type": "web_search"}],
            extra_body={"models": [ANTHROPIC_MODEL]},
        )
    assert "tools[0].type" in refused.value.message and "web_search" in refused.value.message
    assert _posts(simulator) == []


def test_reasoning_tokens_are_reported_and_billed(acme: OpenAI) -> None:
    raw = acme.responses.with_raw_response.create(
        model=OPENAI_MODEL, input="Think", reasoning={"effort": "high"}
    )
    response = raw.parse()
    usage = response.usage
    assert usage is not None and usage.output_tokens_details.reasoning_tokens == 256
    assert usage.output_tokens > 256
    request_id = raw.headers["x-request-id"]
    row = ledger_events([request_id])[request_id]
    assert (row.prompt_tokens, row.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    assert row.cost_usd == catalog_cost(OPENAI_MODEL, usage.input_tokens, usage.output_tokens)


def test_native_stream_with_a_function_call_then_its_output(acme: OpenAI, simulator: SimulatorServer) -> None:
    with acme.responses.stream(
        model=OPENAI_MODEL, input="weather in Rome?", tools=[WEATHER_TOOL], reasoning={"effort": "low"}
    ) as stream:
        events = list(stream)
        first = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    [call] = [item for item in first.output if item.type == "function_call"]
    assert deltas == call.arguments and json.loads(call.arguments).keys() == {"city"}
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens == 16
    assert acme.responses.retrieve(first.id).output[0].type == "function_call"

    second = acme.responses.create(
        model=OPENAI_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C and clear"}],
        tools=[WEATHER_TOOL],
    )
    assert "21C and clear" in second.output_text
    sent = _posts(simulator)[-1]["body"]["input"]
    assert [item.get("type", "message") for item in sent] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert "id" not in sent[0] and sent[1]["call_id"] == call.call_id


def test_native_stream_billed_from_the_upstream_usage(acme_raw: httpx.Client) -> None:
    body = {"model": OPENAI_MODEL, "input": "Say hi", "stream": True, "reasoning": {"effort": "medium"}}
    with acme_raw.stream("POST", "/responses", json=body) as response:
        request_id = response.headers["x-request-id"]
        data = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    usage = data[-1]["response"]["usage"]
    assert (
        data[-1]["type"] == "response.completed" and usage["output_tokens_details"]["reasoning_tokens"] == 64
    )
    row = ledger_events([request_id])[request_id]
    assert (row.streamed, row.tokens_estimated, row.http_status) == (True, False, 200)
    assert (row.prompt_tokens, row.completion_tokens) == (usage["input_tokens"], usage["output_tokens"])


def test_upstream_failures_keep_their_meaning(acme: OpenAI, simulator: SimulatorServer) -> None:
    simulator.script(status=400, error_message="Invalid 'input[0]'.")
    with pytest.raises(openai.BadRequestError) as refused:
        acme.responses.create(model=OPENAI_MODEL, input="Say hi")
    assert "Invalid 'input[0]'." in refused.value.message
    simulator.script(stream_error_after_chunks=2)
    with acme.responses.stream(model=OPENAI_MODEL, input="Say hi there, friend") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.failed" and kinds.count("response.output_text.delta") == 2
