"""Two tenants: neither can see, change, render nor use the other's templates (404, as if absent)."""

from __future__ import annotations

import httpx

from simulator.server import SimulatorServer
from tests.templates_app.conftest import TemplateFactory

VARIABLES = {"company": "Acme", "plan": "Pro"}


def test_the_api_answers_404_for_another_tenants_template_exactly_as_for_none(
    acme_http: httpx.Client, globex_http: httpx.Client, create_template: TemplateFactory
) -> None:
    acme = create_template()
    for ref in ("support-reply", acme["id"]):
        for method, path, body in (
            ("GET", f"/templates/{ref}", None),
            ("PATCH", f"/templates/{ref}", {"description": "mine now"}),
            ("DELETE", f"/templates/{ref}", None),
            ("GET", f"/templates/{ref}/versions", None),
            ("POST", f"/templates/{ref}/render", {"variables": VARIABLES}),
            ("POST", f"/templates/{ref}/restore", {"version": 1}),
        ):
            theirs = globex_http.request(method, path, json=body)
            nobodys = globex_http.request(method, path.replace(ref, "no-such-template"), json=body)
            assert theirs.status_code == nobodys.status_code == 404, (method, path)
            assert theirs.json()["error"]["code"] == "not_found"
            assert theirs.json()["error"]["message"].replace(ref, "X") == (
                nobodys.json()["error"]["message"].replace("no-such-template", "X")
            )
    assert globex_http.get("/templates").json()["data"] == []
    untouched = acme_http.get("/templates/support-reply").json()
    assert untouched["description"] == acme["description"] and untouched["version"] == 1


def test_chat_cannot_use_another_tenants_template_by_any_reference(
    globex_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    acme = create_template()
    simulator.reset()
    for ref in ("support-reply", "support-reply@1", acme["id"], acme["version_id"]):
        response = globex_http.post(
            "/chat/completions", json={"messages": [], "template": ref, "variables": VARIABLES}
        )
        assert response.status_code == 404, ref
        assert response.json()["error"]["code"] == "not_found"
        assert response.json()["error"]["param"] == "template"
    assert simulator.requests() == []


def test_each_tenant_has_its_own_namespace_of_names(
    acme_http: httpx.Client,
    globex_http: httpx.Client,
    create_template: TemplateFactory,
    simulator: SimulatorServer,
) -> None:
    create_template(messages=[{"role": "system", "content": "acme for {{company}}"}])
    create_template(client=globex_http, messages=[{"role": "system", "content": "globex for {{company}}"}])
    for client, expected in ((acme_http, "acme for Acme"), (globex_http, "globex for Acme")):
        response = client.post(
            "/chat/completions", json={"messages": [], "template": "support-reply", "variables": VARIABLES}
        )
        assert response.status_code == 200
        assert simulator.requests()[-1]["body"]["messages"][0]["content"] == expected
    assert [t["name"] for t in globex_http.get("/templates").json()["data"]] == ["support-reply"]
