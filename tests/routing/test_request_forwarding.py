"""What reaches the upstream: the request as sent (extra fields, tools, multimodal parts), minus
Mesh's own fields."""

from __future__ import annotations

from typing import Any

import httpx

from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.conftest import chat_body


def test_openai_fields_and_unknown_extras_are_forwarded_unchanged(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    extras: dict[str, Any] = {
        "n": 1,
        "parallel_tool_calls": False,
        "max_completion_tokens": 50,
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        "stop": ["END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "user": "end-user-42",
        "logit_bias": {"50256": -100},
        "metadata": {"team": "search"},
        "some_future_field": {"nested": [1, 2, 3]},
    }
    response = acme_http.post("/chat/completions", json=chat_body(session_id="s-1", **extras))
    assert response.status_code == 200, response.text
    received = simulator.requests()[-1]["body"]
    for name, value in extras.items():
        assert received[name] == value, name
    assert received["model"] == "gpt-4o-mini"
    assert "session_id" not in received


def test_multimodal_parts_and_tool_messages_are_forwarded(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe these"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
                {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    response = acme_http.post("/chat/completions", json=chat_body(messages=messages))
    assert response.status_code == 200, response.text
    assert simulator.requests()[-1]["body"]["messages"] == messages


def test_openrouter_ids_route_to_openrouter_with_the_upstream_name(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    response = acme_http.post(
        "/chat/completions", json=chat_body(model="openrouter/meta-llama/llama-3.3-70b-instruct")
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openrouter/meta-llama/llama-3.3-70b-instruct"
    received = simulator.requests()[-1]
    assert received["body"]["model"] == "meta-llama/llama-3.3-70b-instruct"
    assert received["headers"]["authorization"] == "Bearer sk-sim-openrouter"


def test_model_defaults_to_the_keys_default_model(
    api_url: str, tenant_acme: Any, simulator: SimulatorServer
) -> None:
    key = api_key_create(tenant=tenant_acme, default_model="openai/gpt-4.1-nano")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        f"{api_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key.plaintext}"}
    )
    assert response.json()["model"] == "openai/gpt-4.1-nano"
    assert simulator.requests()[-1]["body"]["model"] == "gpt-4.1-nano"


def test_model_defaults_to_gpt_4o_without_any_default(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    response = acme_http.post("/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.json()["model"] == "openai/gpt-4o"


def test_models_endpoint_lists_only_configured_providers(acme_http: httpx.Client) -> None:
    response = acme_http.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = {model["id"] for model in body["data"]}
    assert {"openai/gpt-4o", "openai/gpt-4o-mini", "openrouter/meta-llama/llama-3.3-70b-instruct"} <= ids
    assert not any(i.startswith(("anthropic/", "gemini/")) for i in ids)
    assert all(model["object"] == "model" for model in body["data"])


def test_models_endpoint_requires_a_key(api_url: str) -> None:
    assert httpx.get(f"{api_url}/models").status_code == 401
