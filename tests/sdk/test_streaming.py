"""Streams: chunks as they arrive, the connection closed when the loop is left early (the gateway
then cancels the upstream), and the assembled final message (text and tool calls)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import meshapi

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.waiting import wait_until

MINI = "openai/gpt-4o-mini"
WEATHER = meshapi.Tool(
    function=meshapi.ToolFunction(
        name="get_weather",
        description="Get current weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
)


def params(**fields: Any) -> meshapi.ChatCompletionParams:
    fields.setdefault("model", MINI)
    fields.setdefault("messages", [meshapi.ChatMessage(role="user", content="Say hello")])
    return meshapi.ChatCompletionParams(**fields)


def last_upstream(simulator: SimulatorServer) -> dict[str, Any]:
    return [r for r in simulator.requests() if r["path"].endswith("/chat/completions")][-1]


def upstream_cancelled(simulator: SimulatorServer) -> bool:
    return bool(last_upstream(simulator)["outcome"] == "client_disconnected")


SLOW = {"chunks": 200, "chunk_delay_ms": 50}  # ten seconds if read to the end


def test_a_stream_left_early_closes_when_dropped(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    """Kept in a variable, the stream lives on after `break` (as a file would) until it is dropped."""
    started = time.monotonic()
    stream = mesh.chat.completions.stream(params(mock=SLOW))
    for _chunk in stream:
        break
    response = stream.response
    assert response is not None and not response.is_closed
    del stream
    assert response.is_closed
    wait_until(lambda: upstream_cancelled(simulator), timeout=5, what="the upstream stream to be cancelled")
    assert last_upstream(simulator)["chunks_sent"] < 200
    assert time.monotonic() - started < 5


def test_breaking_out_of_the_seed_style_loop_closes_the_connection(
    mesh: meshapi.MeshAPI, simulator: SimulatorServer
) -> None:
    """`for chunk in client.chat.completions.stream(...)`, with no name kept for the stream."""
    for chunk in mesh.chat.completions.stream(params(mock=SLOW)):
        assert chunk.id
        break
    wait_until(lambda: upstream_cancelled(simulator), timeout=5, what="the upstream stream to be cancelled")


def test_async_break_closes_the_connection(
    mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    async def run() -> None:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
            async for _chunk in mesh.chat.completions.stream(params(mock=SLOW)):
                break
            gc.collect()
            deadline = time.monotonic() + 5
            while not upstream_cancelled(simulator) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the loop runs the stream's finaliser meanwhile

    asyncio.run(run())
    assert upstream_cancelled(simulator)


def test_with_block_closes_the_stream(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    with mesh.chat.completions.stream(params(mock=SLOW)) as stream:
        next(stream)
    assert stream.response is not None and stream.response.is_closed
    wait_until(lambda: upstream_cancelled(simulator), timeout=5, what="the upstream stream to be cancelled")


def test_nothing_is_sent_until_iteration(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    stream = mesh.chat.completions.stream(params())
    assert not [r for r in simulator.requests() if r["path"].endswith("/chat/completions")]
    assert list(stream)


def test_final_completion_assembles_text_and_usage(mesh: meshapi.MeshAPI) -> None:
    expected = mesh.chat.completions.create(params(mock={"content": "One two three four."}))
    stream = mesh.chat.completions.stream(
        params(
            mock={"content": "One two three four."}, stream_options=meshapi.StreamOptions(include_usage=True)
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    final = stream.final_completion()
    assert final.choices[0].message.content == streamed == expected.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.total_tokens == expected.usage.total_tokens > 0
    assert final.model == "openai/gpt-4o-mini" and final.id


def test_final_completion_assembles_a_tool_call(mesh: meshapi.MeshAPI) -> None:
    ask = [meshapi.ChatMessage(role="user", content="What is the weather in Paris?")]
    stream = mesh.chat.completions.stream(params(messages=ask, tools=[WEATHER], tool_choice="auto"))
    fragments = [c for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert len(fragments) > 1  # the arguments came in pieces
    final = stream.final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert final.choices[0].finish_reason == "tool_calls"

    answer = mesh.chat.completions.create(
        params(
            messages=[
                *ask,
                meshapi.ChatMessage(
                    role="assistant",
                    tool_calls=[
                        meshapi.ToolCall(
                            id=call.id,
                            function=meshapi.ToolCallFunction(
                                name="get_weather", arguments=call.function.arguments
                            ),
                        )
                    ],
                ),
                meshapi.ChatMessage(role="tool", tool_call_id=call.id, content="18°C and sunny"),
            ],
            tools=[WEATHER],
        )
    )
    assert "18°C and sunny" in (answer.choices[0].message.content or "")


def test_assemble_chunks_of_an_async_stream(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[str, meshapi.ChatCompletion]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
            stream = mesh.chat.completions.stream(params(mock={"content": "alpha beta gamma"}))
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return text, await stream.final_completion()

    text, final = asyncio.run(run())
    assert text == final.choices[0].message.content == "alpha beta gamma"


def test_assemble_chunks_helper(mesh: meshapi.MeshAPI) -> None:
    final = meshapi.assemble_chunks(mesh.chat.completions.stream(params(mock={"content": "a b c"})))
    assert final.choices[0].message.content == "a b c"
