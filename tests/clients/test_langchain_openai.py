"""langchain-openai's ChatOpenAI: invoke, stream with usage, async, tools (streamed and not),
structured output, and the errors it raises."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.clients.conftest import MODEL, Weather


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C and sunny in {city}"


def chat(mesh: tuple[str, str], **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=mesh[0], api_key=mesh[1], max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_invoke_and_stream_with_usage(mesh: tuple[str, str]) -> None:
    llm = chat(mesh, stream_usage=True)
    reply = llm.invoke("Say hi")
    assert isinstance(reply, AIMessage) and reply.content
    assert reply.usage_metadata and reply.usage_metadata["total_tokens"] > 0
    chunks = list(llm.stream("Say hi"))
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.content == reply.content
    assert (
        merged.usage_metadata
        and merged.usage_metadata["total_tokens"] == reply.usage_metadata["total_tokens"]
    )


def test_async_invoke_and_stream(mesh: tuple[str, str]) -> None:
    async def run() -> tuple[Any, str]:
        llm = chat(mesh)
        reply = await llm.ainvoke("hi")
        parts = [chunk.content async for chunk in llm.astream("hi")]
        return reply.content, "".join(str(p) for p in parts)

    plain, streamed = asyncio.run(run())
    assert plain and plain == streamed


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_round_trip(mesh: tuple[str, str], streaming: bool) -> None:
    llm = chat(mesh, streaming=streaming).bind_tools([get_weather])
    question = HumanMessage("What's the weather in Paris?")
    first = llm.invoke([question])
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    assert first.tool_calls[0]["args"] == {"city": "Paris"}
    result = get_weather.invoke(first.tool_calls[0])
    assert isinstance(result, ToolMessage)
    second = llm.invoke([question, first, result])
    assert "18C and sunny in Paris" in str(second.content)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(mesh: tuple[str, str], method: str) -> None:
    structured = chat(mesh).with_structured_output(Weather, method=method)  # type: ignore[arg-type]
    weather = structured.invoke("Weather in Paris?")
    assert isinstance(weather, Weather) and weather.conditions and weather.wind is not None


def test_json_mode_answers_json(mesh: tuple[str, str]) -> None:
    """json_object promises JSON (the schema lives in the prompt, which a simulator cannot read)."""
    reply = chat(mesh).with_structured_output(method="json_mode").invoke("Weather in Paris as JSON")
    assert isinstance(reply, dict) and reply


def test_errors(mesh: tuple[str, str]) -> None:
    with pytest.raises(openai.AuthenticationError):
        ChatOpenAI(model=MODEL, base_url=mesh[0], api_key="rsk_wrong", max_retries=0).invoke("hi")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        ChatOpenAI(model="openai/nope", base_url=mesh[0], api_key=mesh[1], max_retries=0).invoke("hi")  # type: ignore[arg-type]
    with pytest.raises(openai.UnprocessableEntityError):
        chat(mesh, temperature=5).invoke("hi")
