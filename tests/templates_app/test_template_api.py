"""The template API: create, read by name or UUID, list with paging, edit, delete, render, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulator.server import SimulatorServer
from tests.templates_app.conftest import TemplateFactory, template_body


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_created_template_is_readable_by_name_and_by_uuid(
    acme_http: httpx.Client, create_template: TemplateFactory
) -> None:
    created = create_template(
        model="openai/gpt-4o-mini",
        params={"temperature": 0.3},
        variables=[{"name": "plan", "default": "Free", "description": "the customer's plan"}],
    )
    assert created["object"] == "template" and created["name"] == "support-reply"
    assert created["slots"] == ["company", "plan"]
    assert created["model"] == "openai/gpt-4o-mini" and created["params"] == {"temperature": 0.3}
    assert created["variables"] == [{"name": "plan", "default": "Free", "description": "the customer's plan"}]
    assert acme_http.get("/templates/support-reply").json() == created
    assert acme_http.get(f"/templates/{created['id']}").json() == created


def test_names_are_unique_per_tenant(acme_http: httpx.Client, create_template: TemplateFactory) -> None:
    create_template()
    error = error_of(acme_http.post("/templates", json=template_body()), 409)
    assert (error["code"], error["param"]) == ("conflict", "name")
    create_template(name="other")
    error = error_of(acme_http.patch("/templates/other", json={"name": "support-reply"}), 409)
    assert error["code"] == "conflict"


def test_list_is_paginated_in_name_order(acme_http: httpx.Client, create_template: TemplateFactory) -> None:
    for name in ("charlie", "alpha", "bravo"):
        create_template(name=name)
    first = acme_http.get("/templates", params={"limit": 2}).json()
    assert first["object"] == "list" and first["count"] == 3 and first["has_more"] is True
    assert [t["name"] for t in first["data"]] == ["alpha", "bravo"]
    second = httpx.get(first["next"], headers=acme_http.headers).json()
    assert [t["name"] for t in second["data"]] == ["charlie"] and second["has_more"] is False


def test_rename_moves_the_name_and_delete_removes_the_template(
    acme_http: httpx.Client, create_template: TemplateFactory
) -> None:
    created = create_template()
    variables = {"company": "Acme", "plan": "Pro"}
    chat = {"messages": [], "template": "support-reply", "variables": variables}
    assert acme_http.post("/chat/completions", json=chat).status_code == 200  # now cached by name
    renamed = acme_http.patch("/templates/support-reply", json={"name": "support-reply-v2"})
    assert renamed.status_code == 200 and renamed.json()["version"] == 1
    assert error_of(acme_http.post("/chat/completions", json=chat), 404)["param"] == "template"
    assert (
        acme_http.post("/chat/completions", json={**chat, "template": "support-reply-v2"}).status_code == 200
    )

    assert acme_http.delete(f"/templates/{created['id']}").status_code == 204
    error_of(acme_http.get("/templates/support-reply-v2"), 404)
    assert (
        error_of(acme_http.post("/chat/completions", json={**chat, "template": created["id"]}), 404)["code"]
        == "not_found"
    )


def test_render_returns_the_messages_without_calling_a_model(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template(params={"max_tokens": 100}, model="openai/gpt-4o-mini")
    acme_http.patch(
        "/templates/support-reply", json={"messages": [{"role": "user", "content": "v2 {{company}}"}]}
    )
    simulator.reset()
    response = acme_http.post(
        "/templates/support-reply@1/render", json={"variables": {"company": "Acme", "plan": "{{x}}"}}
    )
    assert response.status_code == 200, response.text
    rendered = response.json()
    assert rendered["version"] == 1 and rendered["model"] == "openai/gpt-4o-mini"
    assert rendered["params"] == {"max_tokens": 100}
    assert rendered["messages"] == [
        {"role": "system", "content": "You are the support agent of Acme on the {{x}} plan."}
    ]
    error = error_of(acme_http.post("/templates/support-reply/render", json={"variables": {}}), 422)
    assert error["param"] == "variables.company"
    error = error_of(
        acme_http.post("/templates/support-reply/render", json={"variables": {"company": 1}}), 422
    )
    assert error["details"][0]["loc"] == ["body", "variables", "company"]
    assert simulator.requests() == []


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"name": "has@sign"}, "name"),
        ({"name": "6f1c1d53-43c1-4d3c-9a59-d5c6f1a2b3c4"}, "name"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content"),
        ({"params": {"temperature": 5}}, "params.temperature"),
        ({"params": {"stream": True}}, "params.stream"),
        ({"model": "gpt-4o"}, "model"),
        ({"variables": [{"name": "plan"}, {"name": "plan"}]}, "variables.1.name"),
        ({"variables": [{"name": "bad name"}]}, "variables.0.name"),
        ({"variabels": []}, "variabels"),
    ],
)
def test_invalid_templates_are_422_naming_the_field(
    acme_http: httpx.Client, overrides: dict[str, Any], param: str
) -> None:
    error = error_of(acme_http.post("/templates", json=template_body(**overrides)), 422)
    assert error["code"] == "validation_error"
    assert error["param"].startswith(param), error


def test_the_api_needs_a_valid_key(api_url: str) -> None:
    response = httpx.get(f"{api_url}/templates")
    assert error_of(response, 401)["code"] == "unauthorized"
    response = httpx.get(f"{api_url}/templates", headers={"Authorization": "Bearer rsk_" + "0" * 26})
    assert error_of(response, 401)["code"] == "unauthorized"
