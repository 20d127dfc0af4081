"""The served OpenAPI document lists the Responses API, and what it answers is what it declares."""

from __future__ import annotations

import httpx

from tests.responses_api.conftest import OPENAI_MODEL, WEATHER_TOOL


def test_document_lists_the_responses_operations(providers_url: str, acme_raw: httpx.Client) -> None:
    document = httpx.get(f"{providers_url}/openapi.json", timeout=120).json()
    paths = document["paths"]
    assert set(paths["/v1/responses"]) == {"post"}
    assert set(paths["/v1/responses/{response_id}"]) == {"get", "delete"}
    assert set(paths["/v1/responses/{response_id}/input_items"]) == {"get"}
    create = paths["/v1/responses"]["post"]
    assert set(create["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"400", "401", "402", "404", "422", "429"} <= set(create["responses"])
    schemas = document["components"]["schemas"]
    request_fields = set(schemas["ResponseCreateRequest"]["properties"])
    assert {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
    } <= request_fields
    assert {"previous_response_id", "store", "stream", "session_id", "models"} <= request_fields

    created = acme_raw.post(
        "/responses", json={"model": OPENAI_MODEL, "input": "weather in Paris?", "tools": [WEATHER_TOOL]}
    ).json()
    assert set(created) == set(schemas["ResponseObject"]["properties"])
    assert set(created["usage"]) == set(schemas["ResponseUsage"]["properties"])
    [call] = created["output"]
    assert set(call) == set(schemas["FunctionCall"]["properties"])
    items = acme_raw.get(f"/responses/{created['id']}/input_items").json()
    assert set(items) == set(schemas["ResponseInputItemList"]["properties"])
    deleted = acme_raw.delete(f"/responses/{created['id']}").json()
    assert set(deleted) == set(schemas["ResponseDeleted"]["properties"]) and deleted["deleted"] is True
