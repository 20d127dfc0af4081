"""Django admin for templates: tenant-scoped lists, edits that make versions (served at once by
the gateway), a preview with sample variables, and restoring an old version."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from keys.models import Tenant, TenantMember
from simulator.server import SimulatorServer
from templates_app.models import PromptTemplate
from tests.templates_app.conftest import TemplateFactory

ADMIN = "/admin/templates_app/prompttemplate"


class FormFields(HTMLParser):
    """The submittable fields of the page's main form, as a browser would post them unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "checkbox"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.fields[self._textarea] = ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += (
                data.removeprefix("\n") if not self.fields[self._textarea] else data
            )


def form_fields(html: str) -> dict[str, str]:
    parser = FormFields()
    parser.feed(html)
    return parser.fields


@pytest.fixture
def acme_admin(tenant_acme: Tenant) -> Client:
    """A tenant admin of acme, with the template permissions a tenant admin is given."""
    user = User.objects.create_user("acme-admin", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="templates_app",
            codename__in=[
                "view_prompttemplate",
                "add_prompttemplate",
                "change_prompttemplate",
                "delete_prompttemplate",
                "view_prompttemplateversion",
            ],
        )
    )
    TenantMember.objects.create(user=user, tenant=tenant_acme)
    client = Client()
    client.force_login(user)
    return client


def template_of(tenant: Tenant, name: str = "support-reply") -> PromptTemplate:
    return PromptTemplate.objects.get(tenant=tenant, name=name)


def test_tenant_admins_see_and_open_only_their_tenants_templates(
    acme_admin: Client,
    globex_http: httpx.Client,
    tenant_globex: Tenant,
    create_template: TemplateFactory,
) -> None:
    create_template(name="acme-only")
    create_template(client=globex_http, name="globex-only")
    page = acme_admin.get(f"{ADMIN}/").content.decode()
    assert "acme-only" in page and "globex-only" not in page
    searched = acme_admin.get(f"{ADMIN}/", {"q": "globex"}).content.decode()
    assert "globex-only" not in searched and "0 prompt templates" in searched
    theirs = template_of(tenant_globex, "globex-only").pk
    for url in (f"{ADMIN}/{theirs}/change/", f"{ADMIN}/{theirs}/preview/", f"{ADMIN}/{theirs}/restore/1/"):
        response = acme_admin.get(url)
        assert response.status_code in (302, 404), url
        assert "globex-only" not in response.content.decode()
    assert acme_admin.post(f"{ADMIN}/{theirs}/restore/1/").status_code in (302, 404)
    assert template_of(tenant_globex, "globex-only").versions.count() == 1


def test_superusers_see_every_tenant_and_can_search(
    globex_http: httpx.Client, create_template: TemplateFactory
) -> None:
    create_template(name="acme-only")
    create_template(client=globex_http, name="globex-only")
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    page = client.get(f"{ADMIN}/").content.decode()
    assert "acme-only" in page and "globex-only" in page
    searched = client.get(f"{ADMIN}/", {"q": "globex"}).content.decode()
    assert "globex-only" in searched and "acme-only" not in searched


def test_an_admin_edit_makes_a_new_version_the_gateway_serves_at_once(
    acme_admin: Client,
    acme_http: httpx.Client,
    tenant_acme: Tenant,
    create_template: TemplateFactory,
    simulator: SimulatorServer,
) -> None:
    create_template()
    chat = {"messages": [], "template": "support-reply", "variables": {"company": "Acme", "plan": "Pro"}}
    assert acme_http.post("/chat/completions", json=chat).status_code == 200  # cached now
    pk = template_of(tenant_acme).pk
    fields = form_fields(acme_admin.get(f"{ADMIN}/{pk}/change/").content.decode())
    assert "{{ plan }}" in fields["messages"]
    fields["messages"] = '[{"role": "system", "content": "Edited in admin for {{company}}."}]'
    response = acme_admin.post(f"{ADMIN}/{pk}/change/", fields)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert [v.number for v in template_of(tenant_acme).versions.all()] == [2, 1]
    assert acme_http.post("/chat/completions", json=chat).status_code == 200
    assert simulator.requests()[-1]["body"]["messages"][0]["content"] == "Edited in admin for Acme."
    history = acme_admin.get(f"{ADMIN}/{pk}/change/").content.decode()
    assert "admin acme-admin" in history and f"{ADMIN}/{pk}/restore/1/" in history


def test_admin_rejects_invalid_messages_and_makes_no_version(
    acme_admin: Client, tenant_acme: Tenant, create_template: TemplateFactory
) -> None:
    create_template()
    pk = template_of(tenant_acme).pk
    fields = form_fields(acme_admin.get(f"{ADMIN}/{pk}/change/").content.decode())
    fields["messages"] = '[{"role": "robot", "content": "hi"}]'
    response = acme_admin.post(f"{ADMIN}/{pk}/change/", fields)
    assert response.status_code == 200 and "0.role" in response.content.decode()
    assert template_of(tenant_acme).versions.count() == 1


def test_a_tenant_admin_adds_templates_to_their_own_tenant(
    acme_admin: Client, acme_http: httpx.Client, tenant_acme: Tenant, tenant_globex: Tenant
) -> None:
    fields = form_fields(acme_admin.get(f"{ADMIN}/add/").content.decode())
    fields.update(
        tenant=str(tenant_globex.pk),  # forged: a tenant admin's choices only hold their own tenant
        name="from-admin",
        messages='[{"role": "user", "content": "Hello {{who}}"}]',
    )
    acme_admin.post(f"{ADMIN}/add/", fields)
    assert not PromptTemplate.objects.filter(tenant=tenant_globex).exists()
    fields["tenant"] = str(tenant_acme.pk)
    assert acme_admin.post(f"{ADMIN}/add/", fields).status_code == 302
    rendered = acme_http.post("/templates/from-admin/render", json={"variables": {"who": "you"}}).json()
    assert rendered["messages"] == [{"role": "user", "content": "Hello you"}]


def test_preview_renders_a_version_with_sample_variables(
    acme_admin: Client, acme_http: httpx.Client, tenant_acme: Tenant, create_template: TemplateFactory
) -> None:
    create_template(variables=[{"name": "plan", "default": "Free"}])
    acme_http.patch("/templates/support-reply", json={"messages": [{"role": "system", "content": "v2"}]})
    pk = template_of(tenant_acme).pk
    query: dict[str, str | int] = {"version": 1, "var_company": "<Acme>", "render": 1}
    page = acme_admin.get(f"{ADMIN}/{pk}/preview/", query)
    html = page.content.decode()
    rendered = re.search(r'<pre id="preview-rendered"[^>]*>(.*?)</pre>', html, re.S)
    assert rendered is not None, html[:3000]
    assert "support agent of &lt;Acme&gt; on the Free plan." in rendered.group(1)
    missing = acme_admin.get(f"{ADMIN}/{pk}/preview/", {"version": 1, "render": 1}).content.decode()
    assert 'id="preview-error"' in missing and "company" in missing


def test_restore_from_admin_copies_the_old_version_into_a_new_active_one(
    acme_admin: Client,
    acme_http: httpx.Client,
    tenant_acme: Tenant,
    create_template: TemplateFactory,
) -> None:
    create_template()
    acme_http.patch("/templates/support-reply", json={"messages": [{"role": "system", "content": "v2"}]})
    pk = template_of(tenant_acme).pk
    assert acme_admin.get(f"{ADMIN}/{pk}/restore/1/").status_code == 200  # the confirmation page
    assert acme_admin.post(f"{ADMIN}/{pk}/restore/1/").status_code == 302
    active = template_of(tenant_acme).active_version
    assert active is not None and (active.number, active.restored_from) == (3, 1)
    rendered = acme_http.post(
        "/templates/support-reply/render", json={"variables": {"company": "A", "plan": "B"}}
    ).json()
    assert rendered["version"] == 3 and rendered["messages"][0]["content"].startswith("You are the support")


def test_deleting_in_admin_removes_the_template_from_the_gateway_at_once(
    acme_admin: Client, acme_http: httpx.Client, tenant_acme: Tenant, create_template: TemplateFactory
) -> None:
    create_template()
    chat = {"messages": [], "template": "support-reply", "variables": {"company": "Acme", "plan": "Pro"}}
    assert acme_http.post("/chat/completions", json=chat).status_code == 200  # cached now
    pk = template_of(tenant_acme).pk
    assert acme_admin.post(f"{ADMIN}/{pk}/delete/", {"post": "yes"}).status_code == 302
    assert not PromptTemplate.objects.filter(pk=pk).exists()
    assert acme_http.post("/chat/completions", json=chat).status_code == 404
