"""The admin's compare page over HTTP: a tenant admin runs a comparison billed to one of their
tenant's keys and sees every answer; another tenant's keys and templates are neither offered nor
accepted; an operator picks the tenant first; people without a role get nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import httpx
import pytest

from keys.models import Tenant
from keys.roles import PLATFORM_OPERATOR_GROUP, TENANT_ADMIN_GROUP
from keys.services import CreatedKey
from templates_app.services import template_create
from templates_app.types import TemplateContent
from tests.conftest import role_user
from tests.support.gateway import GatewayServer
from tests.usage.conftest import admin_login, wait_until
from usage.models import UsageEvent

PAGE = "/admin/routing/modelcomparison/"
MINI, FOUR = "openai/gpt-4o-mini", "openai/gpt-4o"


def csrf(page: str) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page[:500]
    return token.group(1)


def submit(client: httpx.Client, base_url: str, data: dict[str, Any], query: str = "") -> httpx.Response:
    page = client.get(f"{PAGE}{query}")
    assert page.status_code == 200, page.text[:500]
    return client.post(
        f"{PAGE}{query}",
        data={"csrfmiddlewaretoken": csrf(page.text), **data},
        headers={"Referer": f"{base_url}{PAGE}"},
    )


@pytest.fixture
def ada_http(gateway: GatewayServer, tenant_acme: Tenant) -> Iterator[httpx.Client]:
    role_user("ada-acme", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)
    with closing(admin_login(gateway.base_url, "ada-acme", "acme-pass-1")) as client:
        yield client


def test_a_tenant_admin_compares_billed_to_their_key_and_sees_every_answer(
    ada_http: httpx.Client, gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    data = {
        "api_key": acme_key.api_key.pk,
        "prompt": "Name a colour",
        "models": [MINI, FOUR],
        "max_tokens": "50",
    }
    response = submit(ada_http, gateway.base_url, data)
    assert response.status_code == 200, response.text[:1000]
    results = re.findall(
        r'<section class="compare-result compare-ok" data-model="([^"]+)" data-request-id="([^"]+)"',
        response.text,
    )
    assert [model for model, _ in results] == [MINI, FOUR]
    comparison_id = re.search(r'id="compare-id">(cmp_[0-9A-Z]+)<', response.text)
    assert comparison_id

    def comparison_rows() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.filter(comparison_id=comparison_id.group(1)))
        return rows if len(rows) == 2 else None

    events = wait_until(comparison_rows, timeout=10, what="the admin's comparison events")
    assert {e.request_id for e in events} == {request_id for _, request_id in results}
    assert all(
        e.api_key_id == acme_key.api_key.pk and e.session_id == "admin-compare:ada-acme" for e in events
    )
    assert all(e.http_status == 200 and e.cost_usd > 0 for e in events)
    listing = ada_http.get("/admin/usage/usageevent/", params={"q": comparison_id.group(1)})
    assert all(e.request_id in listing.text for e in events) and 'id="compare-usage-link"' in response.text
    pattern = r'data-request-id="([^"]+)".*?class="compare-cost" data-raw="([^"]+)"'
    shown = dict(re.findall(pattern, response.text, re.S))
    assert {e.request_id: e.cost_usd for e in events} == {rid: Decimal(cost) for rid, cost in shown.items()}


def test_a_tenant_admin_runs_their_template_with_its_variables(
    ada_http: httpx.Client, gateway: GatewayServer, acme_key: CreatedKey, tenant_acme: Tenant
) -> None:
    template = template_create(
        tenant_id=tenant_acme.pk, name="greeting", created_by="test",
        content=TemplateContent(messages=[{"role": "system", "content": "Greet {{name}} warmly."}]),
    )  # fmt: skip
    missing = submit(
        ada_http,
        gateway.base_url,
        {"api_key": acme_key.api_key.pk, "template": template.pk, "models": [MINI, FOUR]},
    )
    assert missing.status_code == 200 and 'id="compare-refusal" data-status="422"' in missing.text
    assert "name" in missing.text and 'class="compare-result' not in missing.text
    data = {
        "api_key": acme_key.api_key.pk,
        "template": template.pk,
        "variables": "name=Ada",
        "models": [MINI, FOUR],
    }
    response = submit(ada_http, gateway.base_url, data)
    assert response.text.count('class="compare-result compare-ok"') == 2, response.text[:2000]


def test_another_tenant_s_keys_and_templates_are_neither_offered_nor_accepted(
    ada_http: httpx.Client,
    gateway: GatewayServer,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    tenant_globex: Tenant,
) -> None:
    secret = template_create(
        tenant_id=tenant_globex.pk, name="globex-secret", created_by="test",
        content=TemplateContent(messages=[{"role": "system", "content": "globex only"}]),
    )  # fmt: skip
    page = ada_http.get(PAGE, params={"tenant": tenant_globex.pk})  # a tenant admin cannot pick another
    assert page.status_code == 200
    assert "globex" not in page.text and globex_key.api_key.prefix not in page.text
    assert acme_key.api_key.prefix in page.text
    stolen_key = submit(
        ada_http, gateway.base_url, {"api_key": globex_key.api_key.pk, "prompt": "hi", "models": [MINI, FOUR]}
    )
    assert stolen_key.status_code == 200 and 'class="compare-result' not in stolen_key.text
    assert "Select a valid choice" in stolen_key.text
    stolen_template = submit(
        ada_http, gateway.base_url,
        {"api_key": acme_key.api_key.pk, "template": secret.pk, "models": [MINI, FOUR],
         "tenant": tenant_globex.pk},
    )  # fmt: skip
    assert (
        'class="compare-result' not in stolen_template.text
        and "Select a valid choice" in stolen_template.text
    )
    assert not UsageEvent.objects.exclude(comparison_id="").exists()


def test_bad_input_is_a_form_error_and_runs_nothing(
    ada_http: httpx.Client, gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    cases: list[dict[str, Any]] = [
        {"api_key": acme_key.api_key.pk, "prompt": "hi", "models": [MINI]},  # one model
        {"api_key": acme_key.api_key.pk, "prompt": "hi", "models": [MINI, "openai/not-a-model"]},
        {"api_key": acme_key.api_key.pk, "prompt": "hi", "models": [MINI, "openai/text-embedding-3-small"]},
        {"api_key": acme_key.api_key.pk, "prompt": "", "models": [MINI, FOUR]},  # nothing to send
        {"api_key": acme_key.api_key.pk, "prompt": "hi\x00", "models": [MINI, FOUR]},
        {"api_key": acme_key.api_key.pk, "prompt": "hi", "models": [MINI, FOUR], "max_tokens": "-4"},
        {"api_key": "x", "prompt": "hi", "models": [MINI, FOUR]},
        {
            "api_key": acme_key.api_key.pk,
            "prompt": "hi",
            "models": [MINI, FOUR],
            "variables": "no equals sign",
        },
    ]
    for data in cases:
        response = submit(ada_http, gateway.base_url, data)
        assert response.status_code == 200, (data, response.text[:500])
        assert 'class="compare-result' not in response.text, data
        assert "errorlist" in response.text or 'id="compare-refusal"' in response.text, data
    assert not UsageEvent.objects.exclude(comparison_id="").exists()


def test_only_chat_models_are_offered(ada_http: httpx.Client, gateway: GatewayServer) -> None:
    """Embedding and image models cannot answer a chat request: the page does not offer them."""
    page = ada_http.get(PAGE).text
    assert f'value="{MINI}"' in page and f'value="{FOUR}"' in page
    for other in ("openai/text-embedding-3-small", "openai/dall-e-3", "openai/gpt-image-1"):
        assert f'value="{other}"' not in page, other


def test_an_operator_picks_the_tenant_and_others_get_nothing(
    gateway: GatewayServer, tenant_acme: Tenant, tenant_globex: Tenant, globex_key: CreatedKey
) -> None:
    role_user("otto-operator", "operator-pass-1", PLATFORM_OPERATOR_GROUP)
    with closing(admin_login(gateway.base_url, "otto-operator", "operator-pass-1")) as otto:
        first = otto.get(PAGE)
        assert (
            first.status_code == 200
            and 'id="compare-tenant"' in first.text
            and 'id="compare-form"' not in first.text
        )
        picked = otto.get(PAGE, params={"tenant": tenant_globex.pk})
        assert globex_key.api_key.prefix in picked.text and 'id="compare-form"' in picked.text
        data = {
            "tenant": tenant_globex.pk,
            "api_key": globex_key.api_key.pk,
            "prompt": "hi",
            "models": [MINI, FOUR],
        }
        ran = submit(otto, gateway.base_url, data, query=f"?tenant={tenant_globex.pk}")
        assert ran.text.count('class="compare-result compare-ok"') == 2
    role_user("nobody", "nobody-pass-1", "finance")
    with closing(admin_login(gateway.base_url, "nobody", "nobody-pass-1")) as nobody:
        assert nobody.get(PAGE).status_code == 403
        assert "Model comparison" not in nobody.get("/admin/").text
    assert httpx.get(f"{gateway.base_url}{PAGE}").status_code == 302  # to the login page
