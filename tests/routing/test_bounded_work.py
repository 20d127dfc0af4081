"""Bounded work per request: JSON depth, item, count and string limits are checked at parse time,
before validation, on every JSON body; error details are capped; hostile bodies cost little."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.routing.test_error_envelopes import assert_envelope

DEPTH_LIMIT = 64  # MESH_MAX_JSON_DEPTH's default


def nested(depth: int) -> str:
    """JSON text nested `depth` levels deep (lists and objects alternating)."""
    return (
        '{"a":' * (depth // 2) + "[" * (depth - depth // 2) + "]" * (depth - depth // 2) + "}" * (depth // 2)
    )


def post_raw(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "template",
    [
        '{{"model":"openai/gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],"some_future_field":{deep}}}',
        '{{"model":"openai/gpt-4o-mini","messages":[{{"role":"user","content":"hi","x_extra":{deep}}}]}}',
        '{{"model":"openai/gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],"response_format":{deep}}}',
        '{{"model":"openai/gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],'
        '"tools":[{{"type":"function","function":{{"name":"f","parameters":{deep}}}}}]}}',
    ],
    ids=["unknown-field", "message-extra", "response_format", "tool-parameters"],
)
@pytest.mark.parametrize("depth", [255, 1024, 10_000])
def test_nesting_past_the_limit_is_422_naming_it(
    acme_http: httpx.Client, simulator: SimulatorServer, template: str, depth: int
) -> None:
    deep = nested(depth) if depth < 1024 else "[" * depth + "]" * depth
    response = post_raw(acme_http, "/chat/completions", template.format(deep=deep))
    error = assert_envelope(response, 422, "validation_error")
    assert error["details"][0]["type"] == "json_too_deep"
    assert f"deeper than {DEPTH_LIMIT} levels" in error["message"]
    assert simulator.requests() == []


def test_nesting_within_the_limit_is_forwarded(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    text = (
        '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"deep":'
        + nested(DEPTH_LIMIT - 1)
        + "}"
    )
    response = post_raw(acme_http, "/chat/completions", text)
    assert response.status_code == 200, response.text
    assert "deep" in simulator.requests()[-1]["body"]


def test_millions_of_items_are_refused_quickly_and_the_worker_keeps_serving(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    items = ",".join(["{}"] * 3_400_000)  # 10.2 MB: under the 10 MiB body limit
    started = time.monotonic()
    response = post_raw(
        acme_http, "/chat/completions", f'{{"model":"openai/gpt-4o-mini","messages":[{items}]}}'
    )
    elapsed = time.monotonic() - started
    error = assert_envelope(response, 422, "validation_error")
    assert error["details"][0]["type"] == "json_too_large"
    assert len(response.content) < 2_000
    assert elapsed < 5, elapsed  # parse-bound (~0.3 s of CPU); was > 5 s of GIL and a killed worker
    assert acme_http.post("/chat/completions", json=chat_body()).status_code == 200
    assert len(simulator.requests()) == 1


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"messages": [{"role": "user", "content": "x"}] * 2049}, "MESH_MAX_MESSAGES"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 257}]},
            "MESH_MAX_CONTENT_PARTS",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f"}}] * 257}, "MESH_MAX_TOOLS"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "MESH_MAX_STOP_SEQUENCES"),
        ({"models": ["openai/gpt-4o"] * 17}, "MESH_MAX_FALLBACK_MODELS"),
    ],
    ids=["messages", "parts", "tools", "stop", "models"],
)
def test_count_limits_are_422_naming_the_setting(
    acme_http: httpx.Client, simulator: SimulatorServer, overrides: dict[str, Any], setting: str
) -> None:
    error = assert_envelope(
        acme_http.post("/chat/completions", json=chat_body(**overrides)), 422, "validation_error"
    )
    assert setting in error["details"][0]["msg"]
    assert error["details"][0]["type"] == "too_long"
    assert simulator.requests() == []


def test_error_details_are_capped_with_a_count_of_the_rest(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(messages=[{}] * 2000))
    error = assert_envelope(response, 422, "validation_error")
    assert len(error["details"]) == 21  # MESH_MAX_ERROR_DETAILS, then the summary
    assert error["details"][0]["loc"] == ["body", "messages", 0, "role"]
    assert error["details"][-1] == {
        "loc": ["body"],
        "msg": "and 1980 more errors (only the first 20 are listed)",
        "type": "too_many_errors",
    }
    assert len(response.content) < 5_000


def test_templates_api_has_the_same_depth_limit(acme_http: httpx.Client) -> None:
    response = post_raw(acme_http, "/templates", "[" * 10_000 + "]" * 10_000)
    assert assert_envelope(response, 422, "validation_error")["details"][0]["type"] == "json_too_deep"
    body = (
        '{"name":"deep","messages":[{"role":"user","content":"hi"}],"params":{"response_format":'
        + nested(300)
        + "}}"
    )
    error = assert_envelope(post_raw(acme_http, "/templates", body), 422, "validation_error")
    assert error["details"][0]["type"] == "json_too_deep"
    assert acme_http.get("/templates").json()["data"] == []
