"""Every admin page added for finance and tenant admins stays as strictly scoped as the old ones: a
tenant admin of acme, trying globex's data by URL, filter, autocomplete and export, gets 0 of it.
Also: the report's range is bounded (a 10,000-year range is refused in a small page, not built)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from keys.models import ApiKey, AuditEntry, Tenant
from keys.roles import TENANT_ADMIN_GROUP
from keys.services import CreatedKey
from templates_app.models import PromptTemplate
from templates_app.services import template_create
from templates_app.types import TemplateContent
from tests.conftest import role_user
from tests.support.gateway import GatewayServer
from tests.usage.conftest import admin_login
from tests.usage.test_finance_admin import two_tenants_usage  # noqa: F401  (fixture)

REPORT = "/admin/usage/usagereport/"


@pytest.fixture
def ada_http(gateway: GatewayServer, tenant_acme: Tenant) -> Iterator[httpx.Client]:
    role_user("ada-acme", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)
    with closing(admin_login(gateway.base_url, "ada-acme", "acme-pass-1")) as client:
        yield client


def test_a_tenant_admin_gets_nothing_of_another_tenant_on_the_new_pages(
    ada_http: httpx.Client,
    two_tenants_usage: dict[str, list[str]],  # noqa: F811
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    globex_key: CreatedKey,
) -> None:
    globex_template = template_create(
        tenant_id=tenant_globex.pk, name="globex-secret", created_by="test",
        content=TemplateContent(messages=[{"role": "system", "content": "globex only"}]),
    )  # fmt: skip
    secret = "globex-secret-session"

    table = ada_http.get(f"{REPORT}table.csv", params={"tenant": tenant_globex.pk, "group_by": "session_id"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert table.status_code == 200 and secret not in table.text
    total = next(r for r in rows if r["session_id"] == "TOTAL")
    assert int(total["requests"]) == len(two_tenants_usage["acme"])  # acme's own, whatever the filter says
    report = ada_http.get(REPORT, params={"tenant": tenant_globex.pk, "stack_by": "tenant", "preset": "7d"})
    assert report.status_code == 200 and secret not in report.text and "globex" not in report.text
    index = ada_http.get("/admin/")
    assert (
        index.status_code == 200 and 'id="dash-top-tenants"' not in index.text and "globex" not in index.text
    )

    statuses = {
        "globex key page": ada_http.get(f"/admin/keys/apikey/{globex_key.api_key.pk}/change/").status_code,
        "globex tenant page": ada_http.get(f"/admin/keys/tenant/{tenant_globex.pk}/change/").status_code,
        "globex template diff": ada_http.get(
            f"/admin/templates_app/prompttemplate/{globex_template.pk}/diff/?a=1&b=1"
        ).status_code,
        "user autocomplete": ada_http.get(
            "/admin/autocomplete/",
            params={"app_label": "keys", "model_name": "tenantmember", "field_name": "user", "term": "a"},
        ).status_code,
    }
    expected = {"globex key page": 302, "globex tenant page": 302, "globex template diff": 404}
    assert statuses == {**expected, "user autocomplete": 403}, statuses
    tenants = ada_http.get("/admin/keys/tenant/")
    assert "globex" not in tenants.text and "acme" in tenants.text
    audit = ada_http.get("/admin/keys/auditentry/", params={"tenant": tenant_globex.pk, "q": "main"})
    assert audit.status_code == 200 and "globex" not in audit.text and "acme main" in audit.text
    assert AuditEntry.objects.filter(tenant=tenant_globex).exists()  # there was something to leak
    keys = ada_http.get("/admin/keys/apikey/", params={"tenant__id__exact": tenant_globex.pk})
    assert globex_key.api_key.prefix not in keys.text
    assert (
        ApiKey.objects.filter(tenant=tenant_globex).exists()
        and PromptTemplate.objects.filter(tenant=tenant_globex).exists()
    )


def test_an_unbounded_report_range_is_refused_in_a_small_page(
    finance_http: httpx.Client,
    two_tenants_usage: dict[str, list[str]],  # noqa: F811
) -> None:
    huge = {"date_from": "0001-01-01", "date_to": "9999-12-31", "group_by": "day"}
    page = finance_http.get(REPORT, params=huge)
    assert page.status_code == 200 and "at most 731 days" in page.text
    assert len(page.content) < 200_000 and 'id="usage-groups"' not in page.text
    with finance_http.stream("GET", f"{REPORT}csv/", params=huge) as events_csv:  # streamed: any range
        assert events_csv.status_code == 200 and "content-length" not in events_csv.headers
    assert finance_http.get(f"{REPORT}table.csv", params=huge).status_code == 400
    two_years = finance_http.get(REPORT, params={"date_from": "2025-01-01", "date_to": "2026-12-31"})
    assert two_years.status_code == 200 and "By month" in two_years.text
    assert len(two_years.content) < 200_000
