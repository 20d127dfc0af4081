"""Chat requests naming a template reach the upstream with its rendered messages first."""

from __future__ import annotations

from typing import Any

import httpx

from keys.models import Tenant
from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.templates_app.conftest import TemplateFactory


def upstream_body(simulator: SimulatorServer) -> dict[str, Any]:
    body: dict[str, Any] = simulator.requests()[-1]["body"]
    return body


def test_slots_with_and_without_spaces_render_in_strings_and_text_parts(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template(
        messages=[
            {"role": "system", "content": "Agent of {{company}} ({{ plan }}, {{\tplan  }})."},
            {
                "role": "user",
                "name": "customer_{{ region }}",
                "content": [
                    {"type": "text", "text": "Ticket from {{ company }}:"},
                    {"type": "image_url", "image_url": {"url": "https://example.test/{{company}}.png"}},
                ],
            },
        ]
    )
    response = acme_http.post(
        "/chat/completions",
        json={
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "My invoice is wrong."}],
            "template": "support-reply",
            "variables": {"company": "Acme Cloud", "plan": "Pro", "region": "eu"},
        },
    )
    assert response.status_code == 200, response.text
    assert upstream_body(simulator)["messages"] == [
        {"role": "system", "content": "Agent of Acme Cloud (Pro, Pro)."},
        {
            "role": "user",
            "name": "customer_eu",
            "content": [
                {"type": "text", "text": "Ticket from Acme Cloud:"},
                # only text fields are templates: a URL is sent as written
                {"type": "image_url", "image_url": {"url": "https://example.test/{{company}}.png"}},
            ],
        },
        {"role": "user", "content": "My invoice is wrong."},
    ]


def test_openai_sdk_sends_template_and_variables_through_extra_body(
    acme_openai: Any, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template()
    completion = acme_openai.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[],
        extra_body={"template": "support-reply", "variables": {"company": "Acme", "plan": "Team"}},
    )
    assert completion.choices[0].message.content
    assert upstream_body(simulator)["messages"] == [
        {"role": "system", "content": "You are the support agent of Acme on the Team plan."}
    ]


def test_streamed_request_gets_the_rendered_template_too(
    acme_openai: Any, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template()
    stream = acme_openai.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"template": "support-reply", "variables": {"company": "Acme", "plan": "Pro"}},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert [m["content"] for m in upstream_body(simulator)["messages"]] == [
        "You are the support agent of Acme on the Pro plan.",
        "hi",
    ]


def test_values_are_inserted_literally_and_never_rendered_again(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template()
    response = acme_http.post(
        "/chat/completions",
        json={
            "messages": [],
            "template": "support-reply",
            "variables": {"company": "{{plan}} \\1 $0 {{ plan }}", "plan": "{{company}}"},
        },
    )
    assert response.status_code == 200, response.text
    assert upstream_body(simulator)["messages"][0]["content"] == (
        "You are the support agent of {{plan}} \\1 $0 {{ plan }} on the {{company}} plan."
    )


def test_declared_defaults_fill_slots_and_request_values_win(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template(variables=[{"name": "plan", "default": "Free"}, {"name": "company", "default": None}])
    first = acme_http.post(
        "/chat/completions",
        json={"messages": [], "template": "support-reply", "variables": {"company": "Acme"}},
    )
    assert first.status_code == 200, first.text
    assert upstream_body(simulator)["messages"][0]["content"].endswith("Acme on the Free plan.")
    second = acme_http.post(
        "/chat/completions",
        json={
            "messages": [],
            "template": "support-reply",
            "variables": {"company": "Acme", "plan": "Enterprise", "unused": "ignored"},
        },
    )
    assert second.status_code == 200, second.text
    assert upstream_body(simulator)["messages"][0]["content"].endswith("Acme on the Enterprise plan.")


def test_every_missing_slot_is_listed_in_a_422(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template(
        messages=[
            {"role": "system", "content": "{{ company }} / {{plan}}"},
            {"role": "user", "content": [{"type": "text", "text": "{{ticket}} {{company}}"}]},
        ],
        variables=[{"name": "plan", "default": "Free"}],
    )
    simulator.reset()
    response = acme_http.post(
        "/chat/completions", json={"messages": [], "template": "support-reply", "variables": {"other": "x"}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["param"] == "variables.company"
    assert [(d["loc"], d["type"]) for d in error["details"]] == [
        (["body", "variables", "company"], "missing"),
        (["body", "variables", "ticket"], "missing"),
    ]
    assert simulator.requests() == []


def test_template_params_are_defaults_the_request_overrides(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup_invoice", "parameters": {"type": "object"}}}]
    create_template(params={"temperature": 0.2, "max_tokens": 300, "stop": ["END"], "tools": tools})
    response = acme_http.post(
        "/chat/completions",
        json={
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "template": "support-reply",
            "variables": {"company": "Acme", "plan": "Pro"},
            "max_tokens": 50,
        },
    )
    assert response.status_code == 200, response.text
    body = upstream_body(simulator)
    assert body["temperature"] == 0.2
    assert body["stop"] == ["END"]
    assert body["tools"] == tools
    assert body["max_tokens"] == 50
    assert "template" not in body and "variables" not in body


def test_model_comes_from_the_request_then_the_template_then_the_key(
    api_url: str, tenant_acme: Tenant, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    key = api_key_create(tenant=tenant_acme, name="defaults", default_model="openai/gpt-4.1-nano")
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}) as client:
        create_template(client=client, name="with-model", model="openai/gpt-4o-mini")
        create_template(client=client, name="without-model")
        variables = {"company": "Acme", "plan": "Pro"}

        def served(**body: Any) -> tuple[str, str]:
            response = client.post("/chat/completions", json={"messages": [], "variables": variables, **body})
            assert response.status_code == 200, response.text
            return response.json()["model"], upstream_body(simulator)["model"]

        assert served(template="with-model") == ("openai/gpt-4o-mini", "gpt-4o-mini")
        assert served(template="with-model", model="openai/gpt-4o") == ("openai/gpt-4o", "gpt-4o")
        assert served(template="without-model") == ("openai/gpt-4.1-nano", "gpt-4.1-nano")


def test_an_empty_messages_list_needs_a_template(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": []})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "messages"
