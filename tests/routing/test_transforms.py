"""OpenRouter's `middle-out` transform: forwarded to OpenRouter, applied by Mesh for other upstreams."""

from __future__ import annotations

import httpx

from simulator.server import SimulatorServer
from tests.conftest import chat_body

# gpt-4o's context window is 128k tokens; 60 messages of ~10 KB estimate to ~150k.
LONG_CONVERSATION = [{"role": "system", "content": "Be brief."}] + [
    {"role": "user" if i % 2 else "assistant", "content": f"turn {i} " + "x" * 10_000} for i in range(60)
]


def test_middle_out_keeps_first_and_latest_messages_within_the_window(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    body = chat_body(model="openai/gpt-4o", messages=LONG_CONVERSATION, transforms=["middle-out"])
    response = acme_http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    received = simulator.requests()[-1]["body"]
    sent = received["messages"]
    assert "transforms" not in received
    assert 2 < len(sent) < len(LONG_CONVERSATION)
    assert sent[0] == LONG_CONVERSATION[0]
    assert sent[-1] == LONG_CONVERSATION[-1]


def test_without_the_transform_the_prompt_is_sent_whole(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    response = acme_http.post(
        "/chat/completions", json=chat_body(model="openai/gpt-4o", messages=LONG_CONVERSATION)
    )
    assert response.status_code == 200
    assert len(simulator.requests()[-1]["body"]["messages"]) == len(LONG_CONVERSATION)


def test_openrouter_receives_transforms_untouched(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    body = chat_body(model="openrouter/mistralai/mistral-large", transforms=["middle-out"])
    assert acme_http.post("/chat/completions", json=body).status_code == 200
    assert simulator.requests()[-1]["body"]["transforms"] == ["middle-out"]


def test_unknown_transform_is_422(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(transforms=["summarize"]))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "transforms", 0]
