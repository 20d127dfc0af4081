"""Admin: the tenant's webhook secret is shown to its tenant admin only; jobs, files and batches
are listed per tenant and read-only."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from jobs.models import Job, StoredFile, WebhookSecret
from keys.models import Tenant, TenantMember
from keys.services import CreatedKey
from tests.conftest import chat_body

PERMISSIONS = ["view_webhooksecret", "add_webhooksecret", "view_job", "view_storedfile", "view_batch"]


def tenant_admin(tenant: Tenant, username: str) -> Client:
    user = User.objects.create_user(username, password="pw-123456", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="jobs", codename__in=PERMISSIONS)
    )
    TenantMember.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def acme_admin(tenant_acme: Tenant) -> Client:
    return tenant_admin(tenant_acme, "acme-admin")


@pytest.fixture
def globex_admin(tenant_globex: Tenant) -> Client:
    return tenant_admin(tenant_globex, "globex-admin")


def test_each_tenant_admin_sees_only_their_webhook_secret_and_jobs(
    gateway: object,
    acme_http: object,
    acme_admin: Client,
    globex_admin: Client,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    globex_key: CreatedKey,
) -> None:
    acme_secret = WebhookSecret.objects.create(tenant=tenant_acme).secret
    globex_secret = WebhookSecret.objects.create(tenant=tenant_globex).secret
    assert acme_secret.startswith("whsec_") and acme_secret != globex_secret
    job = acme_http.post("/chat/completions", json=chat_body(async_mode=True)).json()  # type: ignore[attr-defined]
    acme_http.post(  # type: ignore[attr-defined]
        "/files", data={"purpose": "batch"}, files={"file": ("a.jsonl", io.BytesIO(b"{}\n"))}
    )

    secrets = acme_admin.get("/admin/jobs/webhooksecret/").content.decode()
    assert acme_secret in secrets and globex_secret not in secrets
    assert globex_secret in globex_admin.get("/admin/jobs/webhooksecret/").content.decode()
    assert acme_secret not in globex_admin.get("/admin/jobs/webhooksecret/").content.decode()
    globex_row = WebhookSecret.objects.get(tenant=tenant_globex)
    assert acme_admin.get(f"/admin/jobs/webhooksecret/{globex_row.pk}/change/").status_code in (302, 404)

    assert job["id"] in acme_admin.get("/admin/jobs/job/").content.decode()
    assert job["id"] not in globex_admin.get("/admin/jobs/job/").content.decode()
    stored = StoredFile.objects.get(tenant=tenant_acme)
    assert stored.id in acme_admin.get("/admin/jobs/storedfile/").content.decode()
    assert stored.id not in globex_admin.get("/admin/jobs/storedfile/").content.decode()
    assert acme_admin.get(f"/admin/jobs/job/{job['id']}/change/").status_code == 200  # read-only view
    assert acme_admin.post(f"/admin/jobs/job/{job['id']}/delete/").status_code == 403
    assert Job.objects.filter(id=job["id"]).exists()


def test_rotating_a_secret_replaces_it(acme_admin: Client, tenant_acme: Tenant) -> None:
    row = WebhookSecret.objects.create(tenant=tenant_acme)
    old = row.secret
    acme_admin.post(
        "/admin/jobs/webhooksecret/", {"action": "rotate", "_selected_action": [row.pk], "index": 0}
    )
    row.refresh_from_db()
    assert row.secret != old and row.secret.startswith("whsec_")
