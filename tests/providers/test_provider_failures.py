"""Each provider's errors, rate limits, timeouts and malformed answers through the SDK; fallback
across providers with the first failing in each retryable way; refusals and content filters."""

from __future__ import annotations

from typing import Any, cast

import httpx
import openai
import orjson
import pytest

from simulator.server import SimulatorServer
from tests.providers.conftest import MODELS, PROVIDERS, upstream_calls
from tests.routing.test_error_envelopes import assert_envelope
from tests.usage.conftest import ledger_events

HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_400_is_bad_request_naming_the_upstream_cause(
    client: Any, simulator: SimulatorServer, provider: str
) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, times=None, status=400, error_message="prompt is too long")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=HELLO)
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error"
    assert body["provider_error"]["provider"] == provider
    assert body["provider_error"]["status"] == 400
    assert body["provider_error"]["message"] == "prompt is too long"
    assert body["code"] == "upstream_bad_request"  # each says no more than "invalid request"
    assert len(upstream_calls(simulator)) == 1


def test_anthropic_error_type_becomes_the_code(client: Any, simulator: SimulatorServer) -> None:
    simulator.script(model="claude-sonnet-4-5", times=None, status=413)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=HELLO)
    assert caught.value.status_code == 413
    body: Any = caught.value.body
    assert body["code"] == "request_too_large" and body["provider_error"]["type"] == "request_too_large"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_429_is_rate_limit_error_with_retry_after(
    client: Any, simulator: SimulatorServer, provider: str
) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, times=None, status=429, retry_after=9)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=model, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "9"
    assert cast(dict[str, Any], caught.value.body)["retry_after_seconds"] == 9


def test_gemini_retry_delay_in_the_body_becomes_retry_after(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    error = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}],
        }
    }
    simulator.script(
        model="gemini-2.5-flash", times=None, status=429, error_body=orjson.dumps(error).decode()
    )
    response = http.post("/chat/completions", json={"model": "gemini/gemini-2.5-flash", "messages": HELLO})
    body = assert_envelope(response, 429, "rate_limit_exceeded")
    assert response.headers["retry-after"] == "31" and body["retry_after_seconds"] == 31
    assert body["provider_error"]["code"] == "RESOURCE_EXHAUSTED"


def test_anthropic_overload_529_is_retried_then_falls_back(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="claude-sonnet-4-5", times=None, status=529)
    body = {"model": "anthropic/claude-sonnet-4-5", "models": ["gemini/gemini-2.5-flash"], "messages": HELLO}
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "gemini/gemini-2.5-flash"
    request_id = response.headers["x-request-id"]
    attempts = ledger_events([request_id])[request_id].attempts
    assert [(a["provider"], a["status"]) for a in attempts] == [
        ("anthropic", 529),
        ("anthropic", 529),
        ("gemini", 200),
    ]


FIRST_FAILURES: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "503": {"status": 503},
    "429": {"status": 429, "retry_after": 30},
    "timeout": {"delay_s": 3},
    "malformed": {"malformed": True},
}


@pytest.mark.parametrize("failure", list(FIRST_FAILURES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("first", "second"), [("anthropic", "gemini"), ("gemini", "azure"), ("azure", "anthropic")]
)
def test_fallback_across_providers(
    client: Any, simulator: SimulatorServer, first: str, second: str, failure: str, stream: bool
) -> None:
    first_model, first_upstream = MODELS[first]
    second_model, _ = MODELS[second]
    simulator.script(model=first_upstream, times=None, **FIRST_FAILURES[failure])
    kwargs: dict[str, Any] = {
        "model": first_model,
        "messages": HELLO,
        "extra_body": {"models": [second_model], "timeout": 1.0},
    }
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        assert {c.model for c in chunks} == {second_model}
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Simulated")
    else:
        completion = client.chat.completions.create(**kwargs)
        assert completion.model == second_model
    tries_of_first = len([r for r in upstream_calls(simulator) if r is not None]) - 1
    # Only failures the upstream certainly did not run are asked again on the same provider.
    assert tries_of_first == (2 if failure in ("500", "503") else 1)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_malformed_upstream_answer_is_502_never_500(
    http: httpx.Client, simulator: SimulatorServer, provider: str, stream: bool
) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, malformed=True)
    response = http.post(
        "/chat/completions",
        json={"model": model, "messages": HELLO, "stream": stream},
    )
    assert_envelope(response, 502, "upstream_error")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_slower_than_the_timeout_is_504(
    http: httpx.Client, simulator: SimulatorServer, provider: str
) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, delay_s=3)
    response = http.post("/chat/completions", json={"model": model, "messages": HELLO, "timeout": 0.5})
    error = assert_envelope(response, 504, "gateway_timeout")
    assert error["provider_error"]["provider"] == provider


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_error_event_mid_stream_ends_with_the_error_chunk_and_is_billed(
    http: httpx.Client, simulator: SimulatorServer, provider: str
) -> None:
    model, upstream_model = MODELS[provider]
    simulator.script(model=upstream_model, chunks=6, stream_error_after_chunks=2)
    body = {"model": model, "messages": HELLO, "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        request_id = response.headers["x-request-id"]
    assert events[-1] == "[DONE]"
    final = orjson.loads(events[-2])
    assert final["choices"][0]["finish_reason"] == "error"
    assert final["error"]["code"] == "upstream_error"
    assert final["error"]["provider_error"]["provider"] == provider
    text = "".join(
        (orjson.loads(e)["choices"][0]["delta"].get("content") or "")
        for e in events[:-2]
        if orjson.loads(e)["choices"]
    )
    assert len(text.split()) == 2
    event = ledger_events([request_id])[request_id]
    assert event.error_code == "upstream_error" and event.cost_usd > 0


def test_anthropic_refusal_is_content_filter(client: Any, simulator: SimulatorServer) -> None:
    simulator.script(model="claude-sonnet-4-5", content_filter="completion")
    completion = client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=HELLO)
    assert completion.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("where", ["prompt", "completion"])
def test_gemini_safety_block_is_content_filter(client: Any, simulator: SimulatorServer, where: str) -> None:
    simulator.script(model="gemini-2.5-flash", content_filter=where)
    completion = client.chat.completions.create(model="gemini/gemini-2.5-flash", messages=HELLO)
    assert completion.choices[0].finish_reason == "content_filter"
    assert not completion.choices[0].message.content


def test_azure_prompt_filter_is_400_content_filter(client: Any, simulator: SimulatorServer) -> None:
    simulator.script(model="gpt-4o-mini", content_filter="prompt")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="azure/gpt-4o-mini", messages=HELLO)
    assert caught.value.code == "content_filter"
    assert caught.value.param == "prompt"


def test_azure_completion_filter_is_content_filter_with_its_results(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", content_filter="completion")
    body = {"model": "azure/gpt-4o-mini", "messages": HELLO}
    payload = http.post("/chat/completions", json=body).json()
    choice = payload["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}
    assert payload["prompt_filter_results"][0]["prompt_index"] == 0


@pytest.mark.parametrize(
    ("provider", "part", "where"),
    [
        (
            "anthropic",
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages.0.content.1",
        ),
        (
            "anthropic",
            {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
            "messages.0.content.1",
        ),
        (
            "gemini",
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}},
            "messages.0.content.1",
        ),
    ],
    ids=["anthropic-audio", "anthropic-video", "gemini-ftp-image"],
)
def test_a_part_the_provider_cannot_take_is_422_naming_it(
    http: httpx.Client, simulator: SimulatorServer, provider: str, part: dict[str, Any], where: str
) -> None:
    model, _ = MODELS[provider]
    content = [{"type": "text", "text": "hi"}, part]
    response = http.post(
        "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}
    )
    error = assert_envelope(response, 422, "validation_error")
    assert error["param"] == where and provider in error["message"]
    assert upstream_calls(simulator) == []


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_several_choices_are_422_where_the_translation_gives_one(
    http: httpx.Client, simulator: SimulatorServer, provider: str
) -> None:
    response = http.post("/chat/completions", json={"model": MODELS[provider][0], "messages": HELLO, "n": 2})
    error = assert_envelope(response, 422, "validation_error")
    assert error["param"] == "n"
    assert upstream_calls(simulator) == []


def test_pdf_file_part_becomes_an_anthropic_document(http: httpx.Client, simulator: SimulatorServer) -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    content = [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}},
    ]
    body = {"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": content}]}
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    sent = upstream_calls(simulator)[-1]["body"]
    assert sent["messages"][0]["content"][1] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
        "title": "a.pdf",
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_models_lists_every_configured_provider(client: Any, provider: str) -> None:
    ids = {model.id for model in client.models.list()}
    assert MODELS[provider][0] in ids


def test_google_is_geminis_other_spelling(client: Any) -> None:
    completion = client.chat.completions.create(model="google/gemini-2.5-flash", messages=HELLO)
    assert completion.choices[0].message.content
