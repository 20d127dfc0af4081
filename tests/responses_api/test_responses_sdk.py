"""The Responses API through the official openai SDK: create, stream, retrieve, delete and
input_items, tool round trips, structured output, previous_response_id across providers, and
one billed ledger row per request."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from tests.clients.conftest import Weather
from tests.responses_api.conftest import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL, WEATHER_TOOL
from tests.usage.conftest import catalog_cost, ledger_events

PROVIDER_MODELS = [OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL]


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_create_is_billed_and_retrievable(acme: OpenAI, model: str) -> None:
    raw = acme.responses.with_raw_response.create(model=model, input="Say hi", instructions="Be brief.")
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == model
    assert response.output_text.startswith("Simulated reply")
    assert response.instructions == "Be brief."
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens

    row = ledger_events([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert row.model_served == model and row.http_status == 200
    assert row.prompt_tokens == response.usage.input_tokens
    assert row.completion_tokens == response.usage.output_tokens
    assert row.cost_usd == catalog_cost(model, row.prompt_tokens, row.completion_tokens)
    assert row.cost_usd > Decimal(0)

    stored = acme.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_stream_text_events(acme: OpenAI, model: str) -> None:
    with acme.responses.stream(model=model, input="Say hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    assert final.status == "completed" and final.output_text.startswith("Simulated reply")
    assert final.usage is not None and final.usage.output_tokens > 0
    assert acme.responses.retrieve(final.id).output_text == final.output_text


@pytest.mark.parametrize("model", PROVIDER_MODELS)
def test_function_call_round_trip_streamed(acme: OpenAI, model: str) -> None:
    """The call's arguments arrive as deltas; its output continues the conversation by id."""
    with acme.responses.stream(
        model=model, input="What's the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        argument_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "".join(argument_deltas) == calls[0].arguments and argument_deltas
    assert set(json.loads(calls[0].arguments)) == {"city"}

    second = acme.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.previous_response_id == first.id
    assert "18C and sunny" in second.output_text


def test_previous_response_continues_on_another_provider(acme: OpenAI, simulator: Any) -> None:
    first = acme.responses.create(model=OPENAI_MODEL, input="My name is Ada.")
    second = acme.responses.create(model=ANTHROPIC_MODEL, previous_response_id=first.id, input="And yours?")
    assert second.model == ANTHROPIC_MODEL and second.status == "completed"
    sent = simulator.requests()[-1]["body"]
    texts = json.dumps(sent["messages"])
    assert "My name is Ada." in texts and first.output_text in texts and "And yours?" in texts
    third = acme.responses.create(model=GEMINI_MODEL, previous_response_id=second.id, input="Bye")
    contents = json.dumps(simulator.requests()[-1]["body"]["contents"])
    assert "My name is Ada." in contents and second.output_text in contents and "Bye" in contents
    assert third.usage is not None and third.usage.input_tokens > second.usage.input_tokens  # type: ignore[union-attr]


def test_input_items_and_delete(acme: OpenAI) -> None:
    response = acme.responses.create(
        model=OPENAI_MODEL,
        input=[
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
        ],
    )
    items = acme.responses.input_items.list(response.id)
    assert [item.role for item in items.data] == ["user", "developer"]  # type: ignore[union-attr]
    ascending = acme.responses.input_items.list(response.id, order="asc", limit=1)
    assert [item.role for item in ascending.data] == ["developer"] and ascending.has_more  # type: ignore[union-attr]
    rest = acme.responses.input_items.list(response.id, order="asc", after=ascending.data[0].id)
    assert [item.role for item in rest.data] == ["user"] and not rest.has_more  # type: ignore[union-attr]
    assert rest.data[0].content[0].text == "Say hi"  # type: ignore[union-attr,index]

    acme.responses.delete(response.id)
    with pytest.raises(Exception) as gone:
        acme.responses.retrieve(response.id)
    assert getattr(gone.value, "status_code", None) == 404


def test_store_false_is_not_retrievable(acme: OpenAI) -> None:
    response = acme.responses.create(model=OPENAI_MODEL, input="Say hi", store=False)
    assert response.to_dict()["store"] is False and response.output_text
    with pytest.raises(Exception) as gone:
        acme.responses.retrieve(response.id)
    assert getattr(gone.value, "status_code", None) == 404


def test_structured_output_and_reasoning_echo(acme: OpenAI, simulator: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}},
        "required": ["city", "temperature_c"],
        "additionalProperties": False,
    }
    text: Any = {"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}}
    for model in PROVIDER_MODELS:
        response = acme.responses.create(
            model=model,
            input="Weather in Paris as JSON",
            text=text,
            reasoning={"effort": "low"},
            max_output_tokens=500,
        )
        assert set(json.loads(response.output_text)) == {"city", "temperature_c"}, model
        assert response.reasoning is not None and response.reasoning.effort == "low"
        assert response.max_output_tokens == 500
        assert response.text.format.type == "json_schema"  # type: ignore[union-attr]
    sent = [r for r in simulator.requests() if r["method"] == "POST"]
    openai_body = sent[0]["body"]  # asked natively
    assert sent[0]["path"] == "/v1/responses"
    assert openai_body["text"] == text and openai_body["reasoning"] == {"effort": "low"}
    assert openai_body["max_output_tokens"] == 500
    anthropic_body = sent[1]["body"]  # translated
    assert sent[1]["path"] == "/v1/messages" and anthropic_body["max_tokens"] == 500


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_parse_into_a_pydantic_model(acme: OpenAI, model: str) -> None:
    parsed = acme.responses.parse(model=model, input="Weather in Paris?", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather) and parsed.output_parsed.city


def test_async_client_streams_and_retrieves(providers_url: str, acme_key: Any) -> None:
    async def run() -> tuple[str, str]:
        async with AsyncOpenAI(base_url=providers_url, api_key=acme_key.plaintext, max_retries=0) as sdk:
            async with sdk.responses.stream(model=GEMINI_MODEL, input="Say hi") as stream:
                async for _ in stream:
                    pass
                final = await stream.get_final_response()
            stored = await sdk.responses.retrieve(final.id)
            return final.output_text, stored.output_text

    streamed, stored = asyncio.run(run())
    assert streamed == stored and streamed.startswith("Simulated reply")
