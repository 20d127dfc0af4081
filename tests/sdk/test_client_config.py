"""Client configuration: MESHAPI_TOKEN / MESHAPI_BASE_URL fallbacks, timeouts per client and per
call, context managers, and the request types of both seed specs reaching the upstream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import meshapi
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.waiting import wait_until
from usage.models import UsageEvent

PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def hello(**fields: Any) -> meshapi.ChatCompletionParams:
    return meshapi.ChatCompletionParams(
        model="openai/gpt-4o-mini", messages=[meshapi.ChatMessage(role="user", content="Say hello")], **fields
    )


def test_token_and_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, mesh_url: str, acme_key: CreatedKey
) -> None:
    monkeypatch.setenv("MESHAPI_TOKEN", acme_key.plaintext)
    monkeypatch.setenv("MESHAPI_BASE_URL", mesh_url)
    with meshapi.MeshAPI() as mesh:
        assert mesh.base_url == mesh_url
        assert mesh.chat.completions.create(hello()).choices[0].message.content

    async def run() -> str | None:
        async with meshapi.AsyncMeshAPI() as mesh:
            return (await mesh.chat.completions.create(hello())).choices[0].message.content

    assert asyncio.run(run())


def test_arguments_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, mesh_url: str, acme_key: CreatedKey
) -> None:
    monkeypatch.setenv("MESHAPI_TOKEN", "rsk_01JWRONGWRONGWRONGWRONGWRO")
    monkeypatch.setenv("MESHAPI_BASE_URL", "http://127.0.0.1:9")
    with meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
        assert mesh.models.list().data
    with (
        meshapi.MeshAPI(base_url=mesh_url, max_retries=0) as mesh,
        pytest.raises(meshapi.AuthenticationError),
    ):
        mesh.models.list()  # the env token was used, and refused


def test_a_missing_token_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHAPI_TOKEN", raising=False)
    with pytest.raises(meshapi.MeshAPIError, match="MESHAPI_TOKEN"):
        meshapi.MeshAPI(base_url="http://127.0.0.1:9")


def test_an_openai_style_base_url_works_too(mesh_url: str, acme_key: CreatedKey) -> None:
    with meshapi.MeshAPI(base_url=f"{mesh_url}/v1/", token=acme_key.plaintext) as mesh:
        assert mesh.models.list().data


def test_timeout_per_call_beats_the_clients(
    mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    with meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=30, max_retries=0) as mesh:
        started = time.monotonic()
        with pytest.raises(meshapi.APITimeoutError):
            mesh.chat.completions.create(hello(mock={"delay_s": 3}), timeout=0.5)
        assert time.monotonic() - started < 2.5
        assert mesh.chat.completions.create(hello(mock={"delay_s": 1})).choices  # client's 30 s


def test_timeouts_are_retried(mesh_url: str, acme_key: CreatedKey, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o-mini", times=1, delay_s=3)
    with meshapi.MeshAPI(base_url=mesh_url, token=acme_key.plaintext, timeout=1) as mesh:
        assert mesh.chat.completions.create(hello()).choices
    assert len([r for r in simulator.requests() if r["path"].endswith("/chat/completions")]) == 2


def test_request_types_of_both_seeds_reach_the_upstream(
    mesh: meshapi.MeshAPI, simulator: SimulatorServer
) -> None:
    params = meshapi.ChatCompletionParams(  # type: ignore[call-arg]  # logit_bias: an unmodelled extra
        model="openai/gpt-4o",
        messages=[
            meshapi.ChatMessage(role="system", content="Be brief."),
            meshapi.ChatMessage(
                role="user",
                content=[
                    meshapi.TextContentPart(text="What is in this picture?"),
                    meshapi.ImageContentPart(image_url=meshapi.ImageUrl(url=PIXEL, detail="low")),
                ],
            ),
        ],
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["END"],
        seed=7,
        user="user-42",
        response_format={"type": "json_object"},
        tools=[meshapi.Tool(function=meshapi.ToolFunction(name="lookup", parameters={"type": "object"}))],
        tool_choice=meshapi.ToolChoice(function=meshapi.ToolChoiceFunction(name="lookup")),
        session_id="sdk-wire",
        models=["openai/gpt-4o-mini"],
        timeout=20,
        parallel_tool_calls=False,  # an OpenAI field the seeds do not list: forwarded
        logit_bias={"50256": -100},  # not even modelled by the SDK: forwarded as given
    )
    reply = mesh.chat.completions.create(params)
    assert reply.choices[0].finish_reason == "tool_calls"
    [sent] = [r["body"] for r in simulator.requests() if r["path"].endswith("/chat/completions")]
    assert sent["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": PIXEL, "detail": "low"},
    }
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"], sent["seed"]) == (
        0.3, 0.9, 50, ["END"], 7,
    )  # fmt: skip
    assert (sent["response_format"], sent["user"], sent["parallel_tool_calls"]) == (
        {"type": "json_object"}, "user-42", False,
    )  # fmt: skip
    assert sent["logit_bias"] == {"50256": -100}
    assert not {"session_id", "models", "timeout", "template", "variables"} & set(sent)  # Mesh's own


def test_every_seed_request_field_serialises_as_the_spec_names_it() -> None:
    params = meshapi.ChatCompletionParams(
        messages=[
            meshapi.ChatMessage(
                role="user",
                content=[
                    meshapi.VideoContentPart(
                        video_url=meshapi.VideoUrl(url="https://v.example/a.mp4"), fps="2"
                    ),
                    meshapi.AudioContentPart(input_audio=meshapi.InputAudio(data="AAAA", format="wav")),
                ],
            ),
            meshapi.ChatMessage(
                role="assistant",
                tool_calls=[
                    meshapi.ToolCall(
                        id="call_1",
                        function=meshapi.ToolCallFunction(name="f", arguments="{}"),
                        thought_signature="sig",
                    )
                ],
            ),
            meshapi.ChatMessage(role="tool", tool_call_id="call_1", content="ok", name="f"),
        ],
        template="support-reply@2",
        variables={"company": "Acme"},
        transforms=["middle-out"],
        modality="image",
        image=meshapi.ImageOptions(
            n=2, size="1024x1024", response_format="b64_json", background="transparent"
        ),
        modalities=["text", "audio"],
        audio=meshapi.AudioOutputOptions(voice="alloy", format="mp3"),
        async_mode=False,
        tool_choice="required",
    )
    body = params.to_body(stream=False)
    assert body["messages"][0]["content"] == [
        {"type": "video_url", "video_url": {"url": "https://v.example/a.mp4"}, "fps": "2"},
        {"type": "input_audio", "input_audio": {"format": "wav", "data": "AAAA"}},
    ]
    assert body["messages"][1]["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "thought_signature": "sig",
    }
    assert body["image"] == {
        "n": 2,
        "size": "1024x1024",
        "response_format": "b64_json",
        "background": "transparent",
    }
    assert (body["template"], body["variables"], body["transforms"], body["modality"]) == (
        "support-reply@2", {"company": "Acme"}, ["middle-out"], "image",
    )  # fmt: skip
    assert (body["modalities"], body["audio"], body["tool_choice"]) == (
        ["text", "audio"], {"voice": "alloy", "format": "mp3"}, "required",
    )  # fmt: skip
    assert "model" not in body and body["stream"] is False  # unset fields are not sent


def test_async_mode_points_to_jobs(mesh: meshapi.MeshAPI) -> None:
    with pytest.raises(ValueError, match=r"jobs\.create"):
        mesh.chat.completions.create(hello(async_mode=True))


def test_responses_keep_fields_the_server_adds_later() -> None:
    chunk = meshapi.ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "choices": [{"index": 0, "delta": {"content": "x", "reasoning": "hm"}, "new": 1}],
            "brand_new": True,
        }
    )
    assert chunk.choices[0].delta.content == "x"
    assert chunk.model_extra == {"brand_new": True}
    assert chunk.choices[0].delta.model_extra == {"reasoning": "hm"}
    completion = meshapi.ChatCompletion.model_validate(
        {"id": "x", "choices": [{"message": {"content": "hi"}}]}
    )
    assert completion.choices[0].message.content == "hi" and completion.usage.total_tokens == 0


def test_assembled_tool_calls_keep_their_thought_signature() -> None:
    """Gemini's signature arrives on the tool call's first delta and must go back unchanged."""
    raw = [
        {"id": "c1", "model": "gemini/gemini-2.5-pro", "choices": [{"index": 0, "delta": {"role": "assistant",
            "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "thought_signature": "c2lnbg==",
                            "function": {"name": "get_weather", "arguments": ""}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"city": '}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '"Paris"}'}}]}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    final = meshapi.assemble_chunks(meshapi.ChatCompletionChunk.model_validate(c) for c in raw)
    [call] = final.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_9",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert call.thought_signature == "c2lnbg==" and final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.content is None and final.model == "gemini/gemini-2.5-pro"


def test_responses_carry_their_request_id(mesh: meshapi.MeshAPI, acme_key: CreatedKey) -> None:
    """`_request_id` (and a stream's `request_id`) is the X-Request-Id the ledger bills under."""
    reply = mesh.chat.completions.create(hello())
    stream = mesh.chat.completions.stream(hello())
    assert stream.request_id is None  # not sent yet
    list(stream)
    ids = [reply._request_id, stream.request_id]
    assert all(ids) and len(set(ids)) == 2
    events = wait_until(
        lambda: (
            list(UsageEvent.objects.filter(request_id__in=ids, provisional=False))
            if UsageEvent.objects.filter(request_id__in=ids, provisional=False).count() == 2
            else None
        ),
        what="both requests in the ledger",
    )
    assert {e.tenant_id for e in events} == {acme_key.api_key.tenant_id}
    assert mesh.models.list()._request_id
