"""The official openai SDK works against the gateway: plain, streaming, tools, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

from openai import AsyncOpenAI

from keys.services import CreatedKey


def test_plain_completion_returns_the_seed_response_shape(acme_openai: Any) -> None:
    completion = acme_openai.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.object == "chat.completion"
    assert completion.id and completion.created
    assert completion.model == "openai/gpt-4o-mini"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.system_fingerprint


def test_streaming_yields_chunks_and_usage_when_asked(acme_openai: Any) -> None:
    stream = acme_openai.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"chunks": 5}},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5
    assert all(c.model == "openai/gpt-4o-mini" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_async_client_plain_and_stream(api_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[str, str]:
        async with AsyncOpenAI(base_url=api_url, api_key=acme_key.plaintext, max_retries=0) as client:
            plain = await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            parts = []
            stream = await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for chunk in stream:
                if chunk.choices:
                    parts.append(chunk.choices[0].delta.content or "")
            return plain.choices[0].message.content or "", "".join(parts)

    plain_text, streamed_text = asyncio.run(run())
    assert plain_text and streamed_text


def test_tool_calls_round_trip(acme_openai: Any) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    first = acme_openai.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools,
        tool_choice="auto",
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    second = acme_openai.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
        tools=tools,
    )
    assert "18C" in (second.choices[0].message.content or "")
