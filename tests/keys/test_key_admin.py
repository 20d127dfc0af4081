"""Django admin: a key's plaintext is shown once and never listed, revoke/rotate/edits made in the
admin apply on the gateway's next API request, tenant admins see only their tenant.

Admin pages go through Django's test client (the full middleware stack, in this process): the
shared gateway's workers cache content-type ids that each test's database flush renumbers, so
admin writes (which log a LogEntry) cannot run there. The API calls go to the real gateway."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

if TYPE_CHECKING:  # the test client's response type exists in django-stubs only
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

from keys.models import ApiKey, Tenant, TenantMember
from keys.services import CreatedKey
from keys.tokens import token_hash
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer

KEYS_ADMIN = "/admin/keys/apikey/"
PLAINTEXT = re.compile(r"rsk_[0-9A-HJKMNP-TV-Z]{26}")


class FormFields(HTMLParser):
    """The fields a browser would submit unchanged from the page's forms."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "checkbox"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("type") == "checkbox" and a.get("name") and "checked" in a:
            self.fields[a["name"]] = a.get("value") or "on"
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.fields[self._textarea] = ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a.get("value", ""))
            if "selected" in a:
                self.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data.strip()


@pytest.fixture
def platform_admin(transactional_db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", password="operator-pw"))
    return client


@pytest.fixture
def acme_admin(tenant_acme: Tenant) -> Client:
    """A tenant admin of acme with the key permissions a tenant admin is given."""
    user = User.objects.create_user("acme-admin", password="acme-pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="keys", codename__in=["view_apikey", "add_apikey", "change_apikey"]
        )
    )
    TenantMember.objects.create(user=user, tenant=tenant_acme)
    client = Client()
    client.force_login(user)
    return client


def text(response: TestResponse) -> str:
    return response.content.decode()


def form_of(html: str) -> FormFields:
    parser = FormFields()
    parser.feed(html)
    return parser


def api_status(gateway: GatewayServer, plaintext: str) -> int:
    headers = {"Authorization": f"Bearer {plaintext}"}
    return httpx.post(
        f"{gateway.base_url}/v1/chat/completions", json=chat_body(), headers=headers
    ).status_code


def create_key_in_admin(admin: Client, tenant: Tenant, name: str, **fields: str) -> TestResponse:
    form = form_of(text(admin.get(f"{KEYS_ADMIN}add/")))
    data = {**form.fields, "tenant": str(tenant.pk), "name": name, **fields}
    return admin.post(f"{KEYS_ADMIN}add/", data=data)


def run_action(admin: Client, action: str, keys: list[ApiKey], **extra: str) -> TestResponse:
    data = {"action": action, "index": "0", **extra}
    return admin.post(KEYS_ADMIN, data={**data, "_selected_action": [str(k.pk) for k in keys]})


def test_a_created_key_is_shown_once_and_never_listed(
    gateway: GatewayServer, platform_admin: Client, tenant_acme: Tenant
) -> None:
    created = create_key_in_admin(platform_admin, tenant_acme, "ci pipeline", rpm="30")
    assert created.status_code == 200, text(created)[-2000:]
    assert "no-store" in created["Cache-Control"]
    plaintext = PLAINTEXT.findall(text(created))
    assert len(set(plaintext)) == 1
    key = ApiKey.objects.get(name="ci pipeline")
    assert key.key_hash == token_hash(plaintext[0]) and key.rpm == 30
    assert api_status(gateway, plaintext[0]) == 200

    listing = text(platform_admin.get(KEYS_ADMIN))
    change = text(platform_admin.get(f"{KEYS_ADMIN}{key.pk}/change/"))
    for page in (listing, change):
        assert key.prefix in page
        assert plaintext[0] not in page and key.key_hash not in page
        assert not PLAINTEXT.search(page)


def test_revoke_action_applies_on_the_next_request(
    gateway: GatewayServer, platform_admin: Client, acme_key: CreatedKey
) -> None:
    assert api_status(gateway, acme_key.plaintext) == 200  # cached as valid
    response = run_action(platform_admin, "revoke", [acme_key.api_key])
    assert response.status_code == 302
    assert api_status(gateway, acme_key.plaintext) == 403
    assert ApiKey.objects.get(pk=acme_key.api_key.pk).revoked_at is not None


def test_rotate_action_asks_for_a_grace_period_then_shows_the_new_key_once(
    gateway: GatewayServer, platform_admin: Client, acme_key: CreatedKey
) -> None:
    assert api_status(gateway, acme_key.plaintext) == 200
    confirm = run_action(platform_admin, "rotate", [acme_key.api_key])
    assert confirm.status_code == 200 and "grace_minutes" in text(confirm)
    assert api_status(gateway, acme_key.plaintext) == 200  # nothing happens before confirming
    data = {
        **form_of(text(confirm)).fields,
        "grace_minutes": "0",
    }
    rotated = platform_admin.post(KEYS_ADMIN, data=data)
    new_plaintext = set(PLAINTEXT.findall(text(rotated)))
    assert len(new_plaintext) == 1 and acme_key.plaintext not in new_plaintext
    assert api_status(gateway, acme_key.plaintext) == 403
    assert api_status(gateway, new_plaintext.pop()) == 200


def test_editing_limits_in_admin_applies_on_the_next_request(
    gateway: GatewayServer, platform_admin: Client, acme_key: CreatedKey
) -> None:
    assert api_status(gateway, acme_key.plaintext) == 200
    url = f"{KEYS_ADMIN}{acme_key.api_key.pk}/change/"
    form = form_of(text(platform_admin.get(url)))
    data = {**form.fields, "rpm": "1"}
    saved = platform_admin.post(url, data=data)
    assert saved.status_code == 302, text(saved)[-3000:]
    assert api_status(gateway, acme_key.plaintext) == 200  # the first request of the window
    assert api_status(gateway, acme_key.plaintext) == 429


def test_suspending_a_tenant_in_admin_blocks_its_keys(
    gateway: GatewayServer, platform_admin: Client, acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    assert api_status(gateway, acme_key.plaintext) == 200
    tenant = acme_key.api_key.tenant
    data = {
        "action": "suspend", "index": "0", "_selected_action": str(tenant.pk),
    }  # fmt: skip
    assert platform_admin.post("/admin/keys/tenant/", data=data).status_code == 302
    assert api_status(gateway, acme_key.plaintext) == 403
    assert api_status(gateway, globex_key.plaintext) == 200


def test_a_tenant_admin_sees_and_creates_only_their_own_tenants_keys(
    gateway: GatewayServer, acme_admin: Client, acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    listing = acme_admin.get(KEYS_ADMIN)
    assert listing.status_code == 200
    assert acme_key.api_key.prefix in text(listing)
    assert globex_key.api_key.prefix not in text(listing) and "globex" not in text(listing)
    assert acme_admin.get(f"{KEYS_ADMIN}{globex_key.api_key.pk}/change/").status_code in (302, 404)
    tenants = acme_admin.get("/admin/keys/tenant/")  # their own tenant's page only
    assert tenants.status_code == 200 and "globex" not in text(tenants)
    assert acme_admin.get(f"/admin/keys/tenant/{globex_key.api_key.tenant_id}/change/").status_code in (
        302,
        404,
    )

    add_form = form_of(text(acme_admin.get(f"{KEYS_ADMIN}add/")))
    assert [o for o in add_form.options["tenant"] if o] == [str(acme_key.api_key.tenant_id)]
    created = create_key_in_admin(acme_admin, acme_key.api_key.tenant, "acme worker")
    assert created.status_code == 200 and PLAINTEXT.search(text(created))
    assert ApiKey.objects.get(name="acme worker").tenant_id == acme_key.api_key.tenant_id

    revoke = run_action(acme_admin, "revoke", [globex_key.api_key])  # not theirs: nothing happens
    assert revoke.status_code in (200, 302)
    assert ApiKey.objects.get(pk=globex_key.api_key.pk).revoked_at is None
    assert api_status(gateway, globex_key.plaintext) == 200
