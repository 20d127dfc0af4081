"""Bad Responses requests: a clear 4xx naming the field in the seeds' envelope, never a 500 and
never an upstream call, and each one recorded once in the ledger."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from django.conf import settings

from simulator.server import SimulatorServer
from tests.responses_api.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, WEATHER_TOOL
from tests.usage.conftest import ledger_events

# (body, status, param): what each is refused with. What only the chat translation cannot carry
# (built-in tools and their items, audio parts…) is asked of an Anthropic model: an OpenAI model
# takes it natively (test_responses_native.py).
REFUSED: list[tuple[Any, int, str | None]] = [
    ({"model": OPENAI_MODEL, "input": "hi\u0000there"}, 422, "input"),
    ({"model": OPENAI_MODEL, "input": 42}, 422, "input"),
    ({"model": OPENAI_MODEL}, 422, "input"),
    ({"model": OPENAI_MODEL, "input": []}, 422, "input"),
    ({"model": OPENAI_MODEL, "input": [{"role": "user", "content": "hi"}, "hello"]}, 422, "input.1"),
    ({"model": OPENAI_MODEL, "input": [{"role": "wizard", "content": "hi"}]}, 422, "input.0.role"),
    ({"model": OPENAI_MODEL, "input": "hi", "stream": "yes"}, 422, "stream"),
    ({"model": OPENAI_MODEL, "input": "hi", "max_output_tokens": 0}, 422, "max_output_tokens"),
    ({"model": OPENAI_MODEL, "input": "hi", "store": 1}, 422, "store"),
    ({"model": ANTHROPIC_MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, 400, "tools.0.type"),
    (
        {"model": ANTHROPIC_MODEL, "input": "hi", "tools": [WEATHER_TOOL, {"type": "file_search"}]},
        400,
        "tools.1.type",
    ),
    ({"model": OPENAI_MODEL, "input": "hi", "tools": [{"type": "function"}]}, 422, "tools.0.name"),
    (
        {"model": ANTHROPIC_MODEL, "input": "hi", "tool_choice": {"type": "web_search_preview"}},
        400,
        "tool_choice.type",
    ),
    ({"model": ANTHROPIC_MODEL, "input": [{"type": "web_search_call", "id": "ws_1"}]}, 400, "input.0.type"),
    ({"model": ANTHROPIC_MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]}, 400, "input.0.type"),
    (
        {
            "model": ANTHROPIC_MODEL,
            "input": [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}],
        },
        400,
        "input.0.content.0.type",
    ),
    (
        {
            "model": ANTHROPIC_MODEL,
            "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
        },
        400,
        "input.0.content.0.image_url",
    ),
    (
        {"model": ANTHROPIC_MODEL, "input": "hi", "text": {"format": {"type": "json_schema"}}},
        422,
        "text.format.name",
    ),
    ({"model": OPENAI_MODEL, "input": "hi", "reasoning": {"effort": "maximum"}}, 422, "reasoning.effort"),
    (
        {"model": OPENAI_MODEL, "input": "hi", "previous_response_id": "resp_nope"},
        400,
        "previous_response_id",
    ),
    ({"model": OPENAI_MODEL, "input": "hi", "metadata": {"k": 1}}, 422, "metadata.k"),
    ({"model": "openai/no-such-model", "input": "hi"}, 404, "model"),
    ({"model": OPENAI_MODEL, "input": "hi", "background": True}, 400, "background"),
    ({"model": OPENAI_MODEL, "input": "hi", "conversation": "conv_1"}, 400, "conversation"),
    ([{"model": OPENAI_MODEL, "input": "hi"}], 422, "body"),
]


@pytest.mark.parametrize(("body", "status", "param"), REFUSED)
def test_refused_by_name_without_an_upstream_call(
    acme_raw: httpx.Client, simulator: SimulatorServer, body: Any, status: int, param: str | None
) -> None:
    response = acme_raw.post(
        "/responses", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert [r for r in simulator.requests() if r["method"] == "POST"] == []
    row = ledger_events([response.headers["x-request-id"]])[response.headers["x-request-id"]]
    assert row.http_status == status and row.cost_usd == 0


def test_huge_input_arrays_are_refused_before_validation(acme_raw: httpx.Client) -> None:
    items = [{"role": "user", "content": "hi"}] * (settings.MESH_MAX_MESSAGES + 1)
    response = acme_raw.post("/responses", json={"model": OPENAI_MODEL, "input": items})
    assert response.status_code == 422 and response.json()["error"]["param"] == "input"
    assert "MESH_MAX_MESSAGES" in response.json()["error"]["details"][0]["msg"]
    tools = [WEATHER_TOOL] * (settings.MESH_MAX_TOOLS + 1)
    response = acme_raw.post("/responses", json={"model": OPENAI_MODEL, "input": "hi", "tools": tools})
    assert response.status_code == 422 and response.json()["error"]["param"] == "tools"


def test_nesting_and_non_json_bodies(acme_raw: httpx.Client) -> None:
    deep: Any = "x"
    for _ in range(settings.MESH_MAX_JSON_DEPTH + 5):
        deep = [deep]
    response = acme_raw.post("/responses", json={"model": OPENAI_MODEL, "input": deep})
    assert response.status_code == 422
    response = acme_raw.post("/responses", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
    response = acme_raw.post("/responses", content=b"input=hi", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_retrieve_and_list_parameters(acme_raw: httpx.Client) -> None:
    assert acme_raw.get("/responses/resp_nope").status_code == 404
    assert acme_raw.delete("/responses/resp_nope").status_code == 404
    assert acme_raw.get("/responses/resp_nope/input_items").status_code == 404
    for hostile in ("resp_%00x", "resp_" + "x" * 5000):
        assert acme_raw.get(f"/responses/{hostile}").status_code == 404
        assert acme_raw.delete(f"/responses/{hostile}").status_code == 404
        assert acme_raw.get(f"/responses/{hostile}/input_items").status_code == 404
    created = acme_raw.post("/responses", json={"model": OPENAI_MODEL, "input": "hi"}).json()
    for query, param in (({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"order": "up"}, "order")):
        response = acme_raw.get(f"/responses/{created['id']}/input_items", params=query)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    response = acme_raw.get(f"/responses/{created['id']}/input_items", params={"after": "msg_unknown"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "after"
    assert acme_raw.put(f"/responses/{created['id']}").status_code == 405
    assert acme_raw.get("/responses").status_code == 405
