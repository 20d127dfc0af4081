"""The audit log: every change to a key, a limit or cap, a template, a price or a tenant is recorded
with who made it and the values before and after, whether it came from the admin, the API or a
management command; tenant admins read their own tenant's entries only; nobody can edit them."""

from __future__ import annotations

import io
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.test import Client

from keys.models import ApiKey, AuditEntry, Tenant
from keys.roles import PLATFORM_OPERATOR_GROUP, TENANT_ADMIN_GROUP
from keys.services import CreatedKey
from routing.models import CatalogModel
from tests.conftest import role_user
from tests.support.gateway import GatewayServer

AUDIT_ADMIN = "/admin/keys/auditentry/"


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def logged_in(username: str, password: str) -> Client:
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def test_management_commands_are_audited_with_the_command_as_actor(transactional_db: None) -> None:
    call_command("create_tenant", "initech", "--spend-cap-usd", "50", stdout=io.StringIO())
    out = io.StringIO()
    call_command("create_api_key", "--tenant", "initech", "--name", "ci", "--rpm", "60", stdout=out)
    key = ApiKey.objects.get(name="ci")
    call_command("rotate_api_key", key.prefix, stdout=io.StringIO())

    (tenant_created,) = entries("tenant.create")
    assert tenant_created.source == "command" and tenant_created.actor.startswith("manage.py create_tenant")
    assert tenant_created.after is not None and tenant_created.after["spend_cap_usd"] == "50"
    created = [e for e in entries("api_key.create") if e.target_id == str(key.pk)]
    assert created and created[0].after is not None and created[0].after["rpm"] == 60
    assert "key_hash" not in created[0].after and out.getvalue().splitlines()[-1] not in str(created[0].after)
    (rotated,) = entries("api_key.rotate")
    assert rotated.actor.startswith("manage.py rotate_api_key") and rotated.before == {"prefix": key.prefix}
    (revoked,) = entries("api_key.revoke")
    assert revoked.target_id == str(key.pk) and revoked.before == {"revoked_at": None}


def test_admin_edits_of_limits_caps_prices_and_tenants_are_audited_with_before_and_after(
    gateway: GatewayServer, tenant_acme: Tenant, acme_key: CreatedKey
) -> None:
    role_user("olga", "operator-pass-1", PLATFORM_OPERATOR_GROUP)
    operator = logged_in("olga", "operator-pass-1")
    key = acme_key.api_key
    page = operator.get(f"/admin/keys/apikey/{key.pk}/change/")
    assert page.status_code == 200
    response = operator.post(
        f"/admin/keys/apikey/{key.pk}/change/",
        data={"name": "acme main", "is_active": "on", "rpm": "120", "spend_cap_period": "monthly"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    (limits,) = entries("api_key.limits_change")
    assert (limits.actor, limits.source, limits.tenant_id) == ("olga", "admin", tenant_acme.pk)
    assert limits.before == {"rpm": None} and limits.after == {"rpm": 120}

    response = operator.post(
        f"/admin/keys/tenant/{tenant_acme.pk}/change/",
        data={
            "name": "acme", "spend_cap_usd": "250.5", "spend_cap_period": "monthly",
            "members-TOTAL_FORMS": "0", "members-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    (cap,) = entries("tenant.cap_change")
    assert cap.before == {"spend_cap_usd": None} and cap.after == {"spend_cap_usd": "250.5"}

    model = CatalogModel.objects.get(model_id="openai/gpt-4o-mini")
    old_price = model.input_per_mtok_usd
    model.input_per_mtok_usd = Decimal("0.2")
    from routing.catalog_services import catalog_model_save

    catalog_model_save(model=model)
    (price,) = entries("price.change")
    assert price.before == {"input_per_mtok_usd": format(old_price.normalize(), "f")}
    assert price.after == {"input_per_mtok_usd": "0.2"} and price.source == "system"  # no entry point


def test_template_changes_through_the_api_name_the_key(
    gateway: GatewayServer, acme_http: httpx.Client, acme_key: CreatedKey
) -> None:
    body = {"name": "greet", "messages": [{"role": "system", "content": "Hi {{name}}"}]}
    assert acme_http.post("/templates", json=body).status_code == 201
    edit = {"messages": [{"role": "system", "content": "Hello {{name}}"}]}
    assert acme_http.patch("/templates/greet", json=edit).status_code == 200
    assert acme_http.post("/templates/greet/restore", json={"version": 1}).status_code in (200, 201)

    created, edited, restored = (
        entries("template.create"),
        entries("template.edit"),
        entries("template.restore"),
    )
    assert len(created) == len(edited) == len(restored) == 1
    assert edited[0].source == "api" and acme_key.api_key.prefix in edited[0].actor
    assert edited[0].before is not None and edited[0].before["messages"][0]["content"] == "Hi {{name}}"
    assert edited[0].after is not None and edited[0].after["messages"][0]["content"] == "Hello {{name}}"
    assert restored[0].after is not None and restored[0].after["restored_from"] == 1


def test_tenant_admins_read_only_their_tenants_entries_and_nobody_edits_them(
    transactional_db: None,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
) -> None:
    role_user("ada", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)
    acme_admin = logged_in("ada", "acme-pass-1")
    listing = acme_admin.get(AUDIT_ADMIN)
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "acme main" in html and "globex main" not in html
    assert "globex" not in acme_admin.get(f"{AUDIT_ADMIN}?tenant={tenant_globex.pk}").content.decode()
    globex_entry = AuditEntry.objects.filter(tenant=tenant_globex).first()
    assert globex_entry is not None
    assert acme_admin.get(f"{AUDIT_ADMIN}{globex_entry.pk}/change/").status_code in (302, 404)
    acme_entry = AuditEntry.objects.filter(tenant=tenant_acme).first()
    assert acme_entry is not None
    detail = acme_admin.get(f"{AUDIT_ADMIN}{acme_entry.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert acme_admin.post(f"{AUDIT_ADMIN}{acme_entry.pk}/delete/").status_code == 403

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=acme_entry.pk).update(actor="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=acme_entry.pk).delete()


def test_adding_a_tenant_admin_in_the_tenant_page_is_audited(
    transactional_db: None, tenant_acme: Tenant
) -> None:
    from django.contrib.auth.models import User

    role_user("olga", "operator-pass-1", PLATFORM_OPERATOR_GROUP)
    newcomer = User.objects.create_user("nina", password="nina-pass-1", is_staff=True)
    operator = logged_in("olga", "operator-pass-1")
    response = operator.post(
        f"/admin/keys/tenant/{tenant_acme.pk}/change/",
        data={
            "name": "acme", "spend_cap_period": "monthly",
            "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "0",
            "members-0-user": str(newcomer.pk), "members-0-tenant": str(tenant_acme.pk),
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    (added,) = entries("tenant.member_add")
    assert (added.actor, added.tenant_id, added.after) == ("olga", tenant_acme.pk, {"member": "nina"})
