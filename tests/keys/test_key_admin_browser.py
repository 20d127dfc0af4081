"""A tenant admin creates a key in the browser: the tenant from a list, allowed and default models
picked from the catalog with a searchable multi-select, limits with units; the plaintext is shown
once with a copy button and a ready curl line; the key works, its page shows its usage and last
use, and the tenant's page its spend against the cap. Another tenant's admin sees none of it."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect

from keys.models import ApiKey, Tenant
from keys.roles import TENANT_ADMIN_GROUP
from keys.services import CreatedKey, tenant_save
from tests.conftest import chat_body, role_user
from tests.support.browser import admin_browser, in_browser_thread
from tests.support.gateway import GatewayServer

pytestmark = pytest.mark.browser
KEYS = "/admin/keys/apikey/"
PLAINTEXT = re.compile(r"rsk_[0-9A-HJKMNP-TV-Z]{26}")


def create_key(base_url: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    with admin_browser(base_url) as browser:
        browser.login("ada-acme", "acme-pass-1")
        browser.visit("/admin/", "tenant-admin-index")
        page = browser.visit(f"{KEYS}add/", "tenant-admin-key-add")
        assert page.locator("#id_tenant option").all_inner_texts() == ["acme"]  # their tenant only
        page.select_option("#id_tenant", label="acme")
        page.fill("#id_name", "checkout service")
        page.locator("#id_allowed_models_input").press_sequentially("mini")  # the multi-select's search
        options = page.locator("#id_allowed_models_from option")
        assert all("mini" in text for text in options.all_inner_texts())
        page.select_option("#id_allowed_models_from", "openai/gpt-4o-mini")
        page.click("#id_allowed_models_add")
        expect(page.locator("#id_allowed_models_to option")).to_have_text(["openai/gpt-4o-mini"])
        page.select_option("#id_default_model", "openai/gpt-4o-mini")
        page.fill("#id_rpm", "600")  # above the operator's ceiling of 100
        page.click("input[name=_save]")
        expect(page.locator(".field-rpm .errorlist")).to_contain_text("At most 100")
        browser.check("tenant-admin-key-ceiling-error")
        page.fill("#id_rpm", "60")
        page.fill("#id_spend_cap_usd", "25")
        page.click("input[name=_save]")
        expect(page.locator("#shown-once")).to_be_visible()
        browser.check("tenant-admin-key-shown-once")
        seen["plaintext"] = page.locator(".mesh-plaintext-key").inner_text()
        seen["curl"] = page.locator(".mesh-curl").inner_text()
        page.locator(".mesh-copy").first.click()
        expect(page.locator(".mesh-copy").first).to_have_text("Copied")
        page.goto(f"{base_url}{KEYS}")
        seen["listing"] = page.content()
    return seen


def key_and_tenant_pages(base_url: str, key_id: int, tenant_id: int) -> dict[str, str]:
    seen: dict[str, str] = {}
    with admin_browser(base_url) as browser:
        browser.login("ada-acme", "acme-pass-1")
        page = browser.visit(f"{KEYS}{key_id}/change/", "tenant-admin-key-page")
        seen["requests"] = page.locator('#key-usage [data-metric="requests"]').get_attribute("data-raw") or ""
        seen["cost"] = page.locator('#key-usage [data-metric="cost_usd"]').get_attribute("data-raw") or ""
        seen["last_used"] = page.locator("#key-last-used").inner_text()
        seen["chart_bars"] = str(page.locator("#key-usage .usage-bar").count())
        page = browser.visit(f"/admin/keys/tenant/{tenant_id}/change/", "tenant-admin-tenant-page")
        seen["spent"] = page.locator("#tenant-spent").get_attribute("data-raw") or ""
        seen["bar_width"] = page.locator("#tenant-cap-bar span").get_attribute("style") or ""
        seen["tenant_keys"] = page.locator("#tenant-keys").inner_text()
        browser.visit("/admin/keys/auditentry/", "tenant-admin-audit-log")
    return seen


def test_a_tenant_admin_creates_a_key_with_catalog_models_and_reads_its_usage(
    admin_gateway: GatewayServer, tenant_acme: Tenant, tenant_globex: Tenant, globex_key: CreatedKey
) -> None:
    tenant_acme.spend_cap_usd = Decimal("0.01")
    tenant_acme.key_rpm_ceiling = 100
    tenant_save(tenant=tenant_acme)
    role_user("ada-acme", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)
    base = admin_gateway.base_url

    seen = in_browser_thread(lambda: create_key(base))

    plaintext = seen["plaintext"]
    assert PLAINTEXT.fullmatch(plaintext)
    assert plaintext not in seen["listing"] and "globex" not in seen["listing"]
    assert f"curl {base}/v1/chat/completions" in seen["curl"] and f"Bearer {plaintext}" in seen["curl"]
    key = ApiKey.objects.get(name="checkout service")
    assert (key.tenant_id, key.allowed_models, key.default_model) == (
        tenant_acme.pk, ["openai/gpt-4o-mini"], "openai/gpt-4o-mini",
    )  # fmt: skip
    assert (key.rpm, key.spend_cap_usd) == (60, Decimal("25"))
    headers = {"Authorization": f"Bearer {plaintext}"}
    ok = httpx.post(f"{base}/v1/chat/completions", json=chat_body(), headers=headers, timeout=30)
    assert ok.status_code == 200, ok.text
    refused = httpx.post(
        f"{base}/v1/chat/completions", json=chat_body(model="openai/gpt-4o"), headers=headers
    )
    assert refused.status_code == 403  # not one of the models picked

    import time

    deadline, pages = time.monotonic() + 5, {}
    while time.monotonic() < deadline:  # fresh within 5 s: no rollup run in between
        pages = in_browser_thread(lambda: key_and_tenant_pages(base, key.pk, tenant_acme.pk))
        if pages["requests"] == "2":
            break
    assert pages["requests"] == "2", pages
    assert Decimal(pages["cost"]) > 0 and pages["chart_bars"] != "0"
    assert "ago" in pages["last_used"]
    assert Decimal(pages["spent"]) == Decimal(pages["cost"])
    assert "width:" in pages["bar_width"] and "checkout service" in pages["tenant_keys"]
    assert "globex" not in pages["tenant_keys"]
