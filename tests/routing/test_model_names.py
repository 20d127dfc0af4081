"""The names clients send for a model: catalog ids (with slashes), bare upstream names (what
litellm sends after stripping `openai/`), tenant aliases edited in admin; and OpenAI's
`GET /v1/models/{id}`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from keys.models import ApiKey, Tenant, TenantMember
from keys.services import CreatedKey, api_key_create
from routing.catalog import catalog_changed
from routing.models import CatalogModel, ModelAlias
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer

ADMIN = "/admin/routing/modelalias"


def ask(client: httpx.Client, model: str) -> httpx.Response:
    return client.post("/chat/completions", json=chat_body(model=model))


def add_catalog_model(model_id: str, upstream_name: str, provider: str = "openrouter") -> None:
    CatalogModel.objects.create(
        model_id=model_id,
        provider=provider,
        upstream_name=upstream_name,
        input_per_mtok_usd=Decimal("1"),
        output_per_mtok_usd=Decimal("2"),
        context_window=8192,
    )
    catalog_changed()


def alias_create(tenant: Tenant, alias: str, target: str) -> None:
    ModelAlias.objects.create(tenant=tenant, alias=alias, target=CatalogModel.objects.get(model_id=target))
    catalog_changed()


@pytest.fixture
def acme_admin(tenant_acme: Tenant) -> Client:
    """A tenant admin of acme with the alias permissions."""
    user = User.objects.create_user("acme-admin", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="routing", codename__endswith="_modelalias")
    )
    TenantMember.objects.create(user=user, tenant=tenant_acme)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def globex_http(api_url: str, globex_key: CreatedKey) -> Any:
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}, timeout=30
    ) as client:
        yield client


def test_retrieve_returns_the_model_object(acme_openai: Any) -> None:
    model = acme_openai.models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini" and model.object == "model" and model.owned_by == "openai"
    listed = {m.id: m for m in acme_openai.models.list()}
    assert model.model_dump() == listed["openai/gpt-4o-mini"].model_dump()


def test_retrieve_takes_ids_with_several_slashes(acme_http: httpx.Client) -> None:
    response = acme_http.get("/models/openrouter/meta-llama/llama-3.3-70b-instruct")
    assert response.status_code == 200
    assert response.json()["id"] == "openrouter/meta-llama/llama-3.3-70b-instruct"


@pytest.mark.parametrize("model", ["openai/no-such-model", "anthropic/claude-haiku-4-5"])
def test_retrieve_of_unknown_or_unlisted_model_is_404(acme_openai: Any, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        acme_openai.models.retrieve(model)
    assert raised.value.status_code == 404
    assert raised.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_retrieve_needs_a_key(api_url: str) -> None:
    assert httpx.get(f"{api_url}/models/openai/gpt-4o").status_code == 401


def test_bare_upstream_name_resolves_to_its_only_configured_entry(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    response = ask(acme_http, "gpt-4o-mini")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openai/gpt-4o-mini"
    assert simulator.requests()[-1]["body"]["model"] == "gpt-4o-mini"
    nested = ask(acme_http, "meta-llama/llama-3.3-70b-instruct")  # an OpenRouter name with a slash
    assert nested.json()["model"] == "openrouter/meta-llama/llama-3.3-70b-instruct"
    assert acme_http.get("/models/gpt-4o-mini").json()["id"] == "openai/gpt-4o-mini"


def test_ambiguous_bare_name_is_404_listing_the_candidates(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    add_catalog_model("openrouter/gpt-4o-mini", "gpt-4o-mini")
    response = ask(acme_http, "gpt-4o-mini")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'openai/gpt-4o-mini'" in error["message"] and "'openrouter/gpt-4o-mini'" in error["message"]
    assert simulator.requests() == []
    assert ask(acme_http, "openai/gpt-4o-mini").status_code == 200  # the full id still works


def test_bare_name_of_an_unconfigured_provider_is_503(acme_http: httpx.Client) -> None:
    response = ask(acme_http, "claude-haiku-4-5")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_available"


def test_alias_made_in_admin_is_listed_and_served(
    acme_admin: Client, tenant_acme: Tenant, acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    target = CatalogModel.objects.get(model_id="openai/gpt-4o-mini")
    page = acme_admin.post(
        f"{ADMIN}/add/", {"tenant": tenant_acme.pk, "alias": "fast", "target": target.pk}, follow=True
    )
    assert page.status_code == 200 and ModelAlias.objects.filter(alias="fast").exists()
    listed = {m["id"]: m for m in acme_http.get("/models").json()["data"]}
    assert listed["fast"]["alias_for"] == "openai/gpt-4o-mini"
    assert listed["fast"]["pricing"] == listed["openai/gpt-4o-mini"]["pricing"]
    response = ask(acme_http, "fast")
    assert response.status_code == 200 and response.json()["model"] == "openai/gpt-4o-mini"
    assert simulator.requests()[-1]["body"]["model"] == "gpt-4o-mini"
    assert acme_http.get("/models/fast").json() == listed["fast"]


def test_alias_edit_and_delete_in_admin_apply_at_once(
    acme_admin: Client, tenant_acme: Tenant, acme_http: httpx.Client
) -> None:
    alias_create(tenant_acme, "fast", "openai/gpt-4o-mini")
    assert ask(acme_http, "fast").json()["model"] == "openai/gpt-4o-mini"
    alias = ModelAlias.objects.get(alias="fast")
    bigger = CatalogModel.objects.get(model_id="openai/gpt-4o")
    acme_admin.post(
        f"{ADMIN}/{alias.pk}/change/", {"tenant": tenant_acme.pk, "alias": "fast", "target": bigger.pk}
    )
    assert ask(acme_http, "fast").json()["model"] == "openai/gpt-4o"
    acme_admin.post(f"{ADMIN}/{alias.pk}/delete/", {"post": "yes"})
    assert not ModelAlias.objects.exists()
    assert ask(acme_http, "fast").status_code == 404


def test_alias_cannot_shadow_a_catalog_id(
    acme_admin: Client, tenant_acme: Tenant, gateway: GatewayServer
) -> None:
    target = CatalogModel.objects.get(model_id="openai/gpt-4o-mini")
    page = acme_admin.post(
        f"{ADMIN}/add/", {"tenant": tenant_acme.pk, "alias": "openai/gpt-4o", "target": target.pk}
    )
    assert "already a catalog model id" in page.content.decode()
    assert not ModelAlias.objects.exists()


def test_aliases_are_per_tenant(
    acme_admin: Client,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_http: httpx.Client,
    globex_http: httpx.Client,
) -> None:
    alias_create(tenant_acme, "fast", "openai/gpt-4o-mini")
    alias_create(tenant_globex, "fast", "openai/gpt-4.1-mini")
    alias_create(tenant_globex, "secret-plan", "openai/gpt-4o")
    assert ask(acme_http, "fast").json()["model"] == "openai/gpt-4o-mini"
    assert ask(globex_http, "fast").json()["model"] == "openai/gpt-4.1-mini"
    assert ask(acme_http, "secret-plan").status_code == 404
    assert acme_http.get("/models/secret-plan").status_code == 404
    acme_ids = {m["id"] for m in acme_http.get("/models").json()["data"]}
    assert "fast" in acme_ids and "secret-plan" not in acme_ids
    # The admin shows acme's admin only acme's aliases, and never globex's by id.
    page = acme_admin.get(f"{ADMIN}/").content.decode()
    assert "gpt-4o-mini" in page and "secret-plan" not in page and "globex" not in page
    theirs = ModelAlias.objects.get(alias="secret-plan").pk
    assert acme_admin.get(f"{ADMIN}/{theirs}/change/").status_code in (302, 404)


def test_alias_follows_the_key_allow_list(tenant_acme: Tenant, api_url: str) -> None:
    alias_create(tenant_acme, "fast", "openai/gpt-4o-mini")
    alias_create(tenant_acme, "big", "openai/gpt-4o")
    limited = api_key_create(tenant=tenant_acme, name="limited", allowed_models=["openai/gpt-4o-mini"])
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {limited.plaintext}"}) as client:
        assert ask(client, "fast").status_code == 200
        assert ask(client, "big").status_code == 403
        assert {m["id"] for m in client.get("/models").json()["data"]} == {"openai/gpt-4o-mini", "fast"}
    assert ApiKey.objects.filter(name="limited").exists()


def test_alias_to_a_disabled_model_is_404_naming_it(tenant_acme: Tenant, acme_http: httpx.Client) -> None:
    alias_create(tenant_acme, "fast", "openai/gpt-4o-mini")
    CatalogModel.objects.filter(model_id="openai/gpt-4o-mini").update(enabled=False)
    catalog_changed()
    response = ask(acme_http, "fast")
    assert response.status_code == 404 and "openai/gpt-4o-mini" in response.json()["error"]["message"]


def test_fallback_models_accept_aliases_and_bare_names(
    tenant_acme: Tenant, acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    alias_create(tenant_acme, "fast", "openai/gpt-4o-mini")
    simulator.script(model="gpt-4o", times=1, status=500)
    response = acme_http.post("/chat/completions", json=chat_body(model="gpt-4o", models=["fast"]))
    assert response.status_code == 200
    assert response.json()["model"] == "openai/gpt-4o-mini"
