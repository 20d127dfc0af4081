"""Anthropic, Gemini and Azure OpenAI used through the official openai SDK exactly like openai/*:
plain, streamed, tool round trips (streamed and not), images, structured output, usage in the ledger."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from simulator.server import SimulatorServer
from tests.providers.conftest import MODELS, PROVIDERS, WEATHER_TOOL, upstream_calls
from tests.usage.conftest import ledger_events

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_completion(client: Any, simulator: SimulatorServer, provider: str) -> None:
    model, upstream_model = MODELS[provider]
    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=50,
    )
    assert completion.object == "chat.completion"
    assert completion.model == model
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.choices[0].message.content or "").startswith("Simulated reply: Say hello")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    (call,) = upstream_calls(simulator)
    if provider == "anthropic":
        assert call["path"] == "/v1/messages"
        assert call["headers"]["x-api-key"] == "sk-ant-sim" and "authorization" not in call["headers"]
        assert call["body"]["system"] == [{"type": "text", "text": "Be brief."}]
        assert call["body"]["model"] == upstream_model and call["body"]["max_tokens"] == 50
    elif provider == "gemini":
        assert call["path"] == f"/v1beta/models/{upstream_model}:generateContent"
        assert call["headers"]["x-goog-api-key"] == "gemini-sim"
        assert call["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert call["body"]["generationConfig"]["maxOutputTokens"] == 50
    else:
        assert call["path"] == f"/openai/deployments/{upstream_model}/chat/completions"
        assert call["query"] == "api-version=2024-10-21"
        assert call["headers"]["api-key"] == "azure-sim" and "authorization" not in call["headers"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streaming_with_usage(client: Any, simulator: SimulatorServer, provider: str) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, chunks=6)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 6
    assert all(c.model == model for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def _round_trip_messages(first_message: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "What's the weather in Paris?"},
        first_message,
        {"role": "tool", "tool_call_id": first_message["tool_calls"][0]["id"], "content": "18C and sunny"},
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_round_trip(client: Any, simulator: SimulatorServer, provider: str) -> None:
    model, _ = MODELS[provider]
    first = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments)["city"] == "Paris"
    assert call.id
    second = client.chat.completions.create(
        model=model,
        messages=_round_trip_messages(first.choices[0].message.model_dump(exclude_none=True)),
        tools=[WEATHER_TOOL],
    )
    assert "18C and sunny" in (second.choices[0].message.content or "")
    sent = upstream_calls(simulator)[-1]["body"]
    if provider == "anthropic":  # the call and its result, ids kept exactly
        assert sent["messages"][1]["content"] == [
            {
                "type": "tool_use",
                "id": call.id,
                "name": "get_weather",
                "input": orjson.loads(call.function.arguments),
            }
        ]
        assert sent["messages"][2] == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}],
        }
        assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    elif provider == "gemini":
        assert sent["contents"][2] == {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18C and sunny"}}}],
        }
        declared = sent["tools"][0]["functionDeclarations"][0]["parameters"]
        assert "additionalProperties" not in declared  # not in Gemini's schema subset: dropped
        assert declared["properties"]["unit"] == {"type": "string", "nullable": True}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_tool_call_arrives_whole(client: Any, provider: str) -> None:
    model, _ = MODELS[provider]
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    ids, names, arguments, finishes = set(), [], "", []
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                assert delta.index == 0
                if delta.id:
                    ids.add(delta.id)
                if delta.function and delta.function.name:
                    names.append(delta.function.name)
                arguments += (delta.function.arguments or "") if delta.function else ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len(ids) == 1 and names == ["get_weather"]
    assert orjson.loads(arguments)["city"] == "Paris"
    assert finishes == ["tool_calls"]
    # The streamed call goes back as the next turn's history like a non-streamed one.
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": ids.pop(), "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        ],
    }
    second = client.chat.completions.create(
        model=model,
        messages=_round_trip_messages(message),
        tools=[WEATHER_TOOL],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in second if c.choices)
    assert "18C and sunny" in text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_image_parts_reach_the_upstream_in_its_format(
    client: Any, simulator: SimulatorServer, provider: str
) -> None:
    model, _ = MODELS[provider]
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    plain = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is in these?"}]
    )
    with_images = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert with_images.usage.prompt_tokens >= plain.usage.prompt_tokens + 2 * 85
    sent = upstream_calls(simulator)[-1]["body"]
    data = PNG.split(",", 1)[1]
    if provider == "anthropic":
        assert sent["messages"][0]["content"][1:] == [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ]
    elif provider == "gemini":
        assert sent["contents"][0]["parts"][1:] == [
            {"inlineData": {"mimeType": "image/png", "data": data}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
        ]
    else:
        assert sent["messages"][0]["content"] == content


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_structured_output_follows_the_schema(client: Any, simulator: SimulatorServer, provider: str) -> None:
    model, _ = MODELS[provider]
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Largest city of France?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
        },
    )
    answer = orjson.loads(completion.choices[0].message.content or "")
    assert set(answer) == {"city", "population"} and isinstance(answer["population"], int)
    sent = upstream_calls(simulator)[-1]["body"]
    if provider == "anthropic":  # Anthropic's structured outputs
        assert sent["output_config"] == {"format": {"type": "json_schema", "schema": CITY_SCHEMA}}
    else:  # Gemini's JSON mode with the schema in its subset
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
        assert sent["generationConfig"]["responseSchema"] == {
            key: value for key, value in CITY_SCHEMA.items() if key != "additionalProperties"
        }


def test_azure_forwards_response_format_unchanged(client: Any, simulator: SimulatorServer) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
    }
    client.chat.completions.create(
        model="azure/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        response_format=response_format,
    )
    assert upstream_calls(simulator)[-1]["body"]["response_format"] == response_format


@pytest.mark.parametrize("provider", PROVIDERS)
def test_usage_and_cost_are_in_the_ledger(client: Any, simulator: SimulatorServer, provider: str) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    response = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello"}],
    )
    completion = response.parse()
    assert completion.usage.prompt_tokens == 1000
    assert completion.usage.prompt_tokens_details.cached_tokens == 400
    request_id = response.headers["x-request-id"]
    event = ledger_events([request_id])[request_id]
    assert (event.provider, event.model_served) == (provider, model)
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens) == (1000, 100, 400)
    from routing.models import CatalogModel

    row = CatalogModel.objects.get(model_id=model)
    assert row.cached_input_per_mtok_usd is not None
    expected = (
        600 * row.input_per_mtok_usd + 400 * row.cached_input_per_mtok_usd + 100 * row.output_per_mtok_usd
    ) / 1_000_000
    assert event.cost_usd == expected


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_parallel_tool_results_go_back_in_one_turn(
    client: Any, simulator: SimulatorServer, provider: str
) -> None:
    model, _ = MODELS[provider]
    calls = [
        {
            "id": "toolu_paris",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "toolu_rome",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"city":"Rome"}'},
        },
    ]
    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris and time in Rome?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_paris", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_rome", "content": "14:05"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert "18C" in (completion.choices[0].message.content or "")
    sent = upstream_calls(simulator)[-1]["body"]
    if provider == "anthropic":
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"] == [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_rome", "name": "get_time", "input": {"city": "Rome"}},
        ]
        assert sent["messages"][2]["content"] == [
            {"type": "tool_result", "tool_use_id": "toolu_paris", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_rome", "content": "14:05"},
        ]
    else:
        assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
        assert sent["contents"][2]["parts"] == [
            {"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "14:05"}}},
        ]
