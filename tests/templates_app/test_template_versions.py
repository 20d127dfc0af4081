"""Versions: every content change is a new immutable version; requests may pin one; restore copies."""

from __future__ import annotations

import time

import httpx

from simulator.server import SimulatorServer
from tests.templates_app.conftest import TemplateFactory
from usage.models import UsageEvent

VARIABLES = {"company": "Acme", "plan": "Pro"}


def system_prompt_for(client: httpx.Client, simulator: SimulatorServer, template: str) -> str:
    response = client.post(
        "/chat/completions", json={"messages": [], "template": template, "variables": VARIABLES}
    )
    assert response.status_code == 200, response.text
    content: str = simulator.requests()[-1]["body"]["messages"][0]["content"]
    return content


def edit_system_prompt(client: httpx.Client, ref: str, text: str) -> dict[str, object]:
    response = client.patch(f"/templates/{ref}", json={"messages": [{"role": "system", "content": text}]})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_each_content_change_is_a_new_version_and_requests_use_the_active_one(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    created = create_template(messages=[{"role": "system", "content": "v1 for {{company}}"}])
    assert created["version"] == 1
    assert system_prompt_for(acme_http, simulator, "support-reply") == "v1 for Acme"

    edited = edit_system_prompt(acme_http, "support-reply", "v2 for {{company}} on {{plan}}")
    assert edited["version"] == 2 and edited["version_id"] != created["version_id"]
    assert system_prompt_for(acme_http, simulator, "support-reply") == "v2 for Acme on Pro"

    versions = acme_http.get("/templates/support-reply/versions").json()
    assert [(v["version"], v["active"]) for v in versions["data"]] == [(2, True), (1, False)]
    assert versions["data"][1]["messages"] == [{"role": "system", "content": "v1 for {{company}}"}]


def test_metadata_edits_and_unchanged_content_make_no_version(
    acme_http: httpx.Client, create_template: TemplateFactory
) -> None:
    create_template()
    response = acme_http.patch("/templates/support-reply", json={"description": "Tone: friendly"})
    assert response.status_code == 200 and response.json()["version"] == 1
    same = acme_http.get("/templates/support-reply").json()["messages"]
    assert acme_http.patch("/templates/support-reply", json={"messages": same}).json()["version"] == 1
    retuned = acme_http.patch("/templates/support-reply", json={"params": {"temperature": 0.1}}).json()
    assert retuned["version"] == 2 and retuned["messages"] == same  # a PATCH keeps unsent content


def test_requests_pin_a_version_by_number_or_version_uuid(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    created = create_template(messages=[{"role": "system", "content": "v1 {{company}}"}])
    edit_system_prompt(acme_http, "support-reply", "v2 {{company}}")
    assert system_prompt_for(acme_http, simulator, "support-reply@1") == "v1 Acme"
    assert system_prompt_for(acme_http, simulator, "support-reply@2") == "v2 Acme"
    assert system_prompt_for(acme_http, simulator, str(created["version_id"])) == "v1 Acme"
    assert system_prompt_for(acme_http, simulator, str(created["id"])) == "v2 Acme"  # template UUID: active


def test_an_unknown_version_is_not_found(acme_http: httpx.Client, create_template: TemplateFactory) -> None:
    create_template()
    for ref in ("support-reply@2", "support-reply@one", "support-reply@", "other@1"):
        response = acme_http.post(
            "/chat/completions", json={"messages": [], "template": ref, "variables": VARIABLES}
        )
        assert response.status_code == 404, ref
        assert response.json()["error"]["code"] == "not_found"
        assert response.json()["error"]["param"] == "template"


def test_restore_makes_an_old_version_active_again_as_a_new_version(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template(messages=[{"role": "system", "content": "v1 {{company}}"}], model="openai/gpt-4o-mini")
    acme_http.patch(
        "/templates/support-reply", json={"messages": [{"role": "system", "content": "v2"}], "model": None}
    )
    response = acme_http.post("/templates/support-reply/restore", json={"version": 1})
    assert response.status_code == 201, response.text
    restored = response.json()
    assert (restored["version"], restored["restored_from"], restored["active"]) == (3, 1, True)
    assert restored["model"] == "openai/gpt-4o-mini"
    assert system_prompt_for(acme_http, simulator, "support-reply") == "v1 Acme"
    assert simulator.requests()[-1]["body"]["model"] == "gpt-4o-mini"
    history = acme_http.get("/templates/support-reply/versions").json()["data"]
    assert [v["version"] for v in history] == [3, 2, 1]

    missing = acme_http.post("/templates/support-reply/restore", json={"version": 9})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "version"


def test_usage_records_the_template_and_version_that_served(
    acme_http: httpx.Client, create_template: TemplateFactory
) -> None:
    created = create_template()
    edit_system_prompt(acme_http, "support-reply", "v2 {{company}}")
    response = acme_http.post(
        "/chat/completions", json={"messages": [], "template": "support-reply@1", "variables": VARIABLES}
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    deadline = time.monotonic() + 10
    event = None
    while event is None and time.monotonic() < deadline:
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is None:
            time.sleep(0.05)
    assert event is not None, "no usage event within 10 s"
    assert (event.template_id, event.template_version) == (created["id"], 1)


def test_an_overlong_reference_is_not_found(acme_http: httpx.Client) -> None:
    response = acme_http.post(
        "/chat/completions", json={"messages": [], "template": "x" * 5000, "variables": VARIABLES}
    )
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "template"
