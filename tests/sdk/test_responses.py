"""`client.responses` of the meshapi SDK against the live gateway: create, stream, retrieve,
delete, input_items, continuing by id, the async client, and the errors it raises."""

from __future__ import annotations

import asyncio

import meshapi
import pytest

from keys.services import CreatedKey

MODEL = "openai/gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_create_retrieve_input_items_delete(mesh: meshapi.MeshAPI) -> None:
    params = meshapi.ResponseCreateParams(model=MODEL, input="Say hi", instructions="Be brief.")
    response = mesh.responses.create(params)
    assert response.id.startswith("resp_") and response.status == "completed" and response.model == MODEL
    assert response.output_text.startswith("Simulated reply")
    assert response.usage is not None and response.usage.total_tokens > 0
    assert mesh.responses.retrieve(response.id).output_text == response.output_text
    items = mesh.responses.input_items.list(response.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]
    assert items.data[0].content[0]["text"] == "Say hi"
    assert mesh.responses.delete(response.id).deleted is True
    with pytest.raises(meshapi.NotFoundError):
        mesh.responses.retrieve(response.id)


def test_stream_a_function_call_and_continue_by_id(mesh: meshapi.MeshAPI) -> None:
    with mesh.responses.stream(
        {"model": MODEL, "input": "weather in Paris?", "tools": [WEATHER_TOOL]}
    ) as stream:
        events = list(stream)
        first = stream.final_response()
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta or "" for e in events if e.type == "response.function_call_arguments.delta")
    [call] = first.function_calls
    assert call.name == "get_weather" and deltas == call.arguments
    second = mesh.responses.create(
        {
            "model": MODEL,
            "previous_response_id": first.id,
            "input": [{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        }
    )
    assert second.previous_response_id == first.id and "18C" in second.output_text


def test_reasoning_usage_and_errors(mesh: meshapi.MeshAPI) -> None:
    response = mesh.responses.create({"model": MODEL, "input": "Think", "reasoning": {"effort": "low"}})
    assert response.usage is not None and response.usage.reasoning_tokens == 16
    with pytest.raises(meshapi.BadRequestError) as refused:
        mesh.responses.create({"model": MODEL, "input": "hi", "previous_response_id": "resp_unknown"})
    assert refused.value.code == "previous_response_not_found"
    with pytest.raises(meshapi.ValidationError):
        mesh.responses.create({"model": MODEL, "input": "hi", "max_output_tokens": 0})
    with pytest.raises(ValueError):
        mesh.responses.retrieve("")


def test_async_client(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> tuple[str, str, int]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30) as client:
            created = await client.responses.create({"model": MODEL, "input": "Say hi"})
            streamed = await client.responses.stream({"model": MODEL, "input": "Say hi"}).final_response()
            page = await client.responses.input_items.list(streamed.id)
            await client.responses.delete(created.id)
            return created.output_text, streamed.output_text, len(page.data)

    created, streamed, items = asyncio.run(run())
    assert created == streamed and created and items == 1
