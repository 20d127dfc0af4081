"""The hot path reads templates from Redis: no database for a template seen recently, and every
change through the API is visible on the next request, whichever worker serves it."""

from __future__ import annotations

import httpx
import redis
from django.conf import settings

from keys.models import Tenant
from simulator.server import SimulatorServer
from templates_app.models import PromptTemplate, PromptTemplateVersion
from tests.templates_app.conftest import TemplateFactory

CHAT = {"messages": [], "template": "support-reply", "variables": {"company": "Acme", "plan": "Pro"}}


def system_prompt(client: httpx.Client, simulator: SimulatorServer) -> str:
    response = client.post("/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    content: str = simulator.requests()[-1]["body"]["messages"][0]["content"]
    return content


def test_a_template_seen_recently_is_served_without_the_database(
    acme_http: httpx.Client, tenant_acme: Tenant, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template()
    expected = system_prompt(acme_http, simulator)
    cached = redis.Redis.from_url(settings.REDIS_URL).hkeys(f"mesh:tpl:{{{tenant_acme.pk}}}")
    assert b"r:support-reply" in cached
    # Behind the services' back (no invalidation): only a cache hit can still serve the template.
    PromptTemplateVersion.objects.filter(template__tenant=tenant_acme).update(messages=[])
    PromptTemplate.objects.filter(tenant=tenant_acme).update(name="gone-from-the-database")
    for _ in range(4):  # both workers
        assert system_prompt(acme_http, simulator) == expected


def test_changes_through_the_api_apply_on_the_next_request_on_every_worker(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    create_template()
    for _ in range(4):
        system_prompt(acme_http, simulator)  # warm both workers' caches
    acme_http.patch(
        "/templates/support-reply", json={"messages": [{"role": "system", "content": "new {{plan}}"}]}
    )
    assert {system_prompt(acme_http, simulator) for _ in range(4)} == {"new Pro"}
    assert acme_http.post("/templates/support-reply/restore", json={"version": 1}).status_code == 201
    assert {system_prompt(acme_http, simulator) for _ in range(4)} == {
        "You are the support agent of Acme on the Pro plan."
    }


def test_a_template_created_after_a_miss_is_found_at_once(
    acme_http: httpx.Client, create_template: TemplateFactory, simulator: SimulatorServer
) -> None:
    for _ in range(2):
        assert acme_http.post("/chat/completions", json=CHAT).status_code == 404  # "no such" is cached too
    create_template()
    assert system_prompt(acme_http, simulator) == "You are the support agent of Acme on the Pro plan."
