"""A tenant admin builds a template in the browser as a person would: two messages and a variable as
rows, a live preview that lists missing slots, an edit that makes a new version, a diff of two
versions and a restore. Checked through the gateway's template API afterwards."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from keys.models import Tenant
from keys.roles import TENANT_ADMIN_GROUP
from keys.services import CreatedKey
from tests.conftest import role_user
from tests.support.browser import admin_browser, in_browser_thread
from tests.support.gateway import GatewayServer

pytestmark = pytest.mark.browser
TEMPLATES = "/admin/templates_app/prompttemplate/"


def build_edit_diff_restore(base_url: str) -> None:
    with admin_browser(base_url) as browser:
        browser.login("ada-acme", "acme-pass-1")
        page = browser.visit(f"{TEMPLATES}add/", "tenant-admin-template-add")
        assert page.locator("#id_params").input_value() == ""  # starts empty, never "null"
        expect(page.locator("#message-rows .mesh-empty")).to_be_visible()
        page.fill("#id_name", "support-reply")
        page.click("#add-message")
        page.click("#add-message")
        rows = page.locator(".mesh-message-row")
        rows.nth(0).locator(".mesh-role").select_option("system")
        rows.nth(0).locator(".mesh-content").fill("You help {{company}} customers on the {{plan}} plan.")
        rows.nth(1).locator(".mesh-role").select_option("user")
        rows.nth(1).locator(".mesh-content").fill("Question: {{question}}")
        page.click("#add-variable")
        variable = page.locator(".mesh-variable-row").nth(0)
        variable.locator(".mesh-var-name").fill("plan")
        variable.locator(".mesh-var-required").uncheck()
        variable.locator(".mesh-var-default").fill("Free")

        expect(page.locator("#preview-missing")).to_have_text("Missing: company, question")
        page.locator('.mesh-sample[data-slot="company"]').fill("Acme")
        page.locator('.mesh-sample[data-slot="question"]').fill("Where is my invoice?")
        expect(page.locator("#preview-missing")).to_have_text("Every slot has a value.")
        expect(page.locator(".mesh-rendered-content").first).to_have_text(
            "You help Acme customers on the Free plan."
        )
        rows.nth(1).locator(".mesh-up").click()  # reorder, then back
        expect(page.locator(".mesh-message-row .mesh-role").first).to_have_value("user")
        page.locator(".mesh-message-row").nth(0).locator(".mesh-down").click()
        expect(page.locator(".mesh-message-row .mesh-role").first).to_have_value("system")
        browser.check("tenant-admin-template-filled")
        page.click("input[name=_continue]")
        page.wait_for_url("**/change/")
        browser.check("tenant-admin-template-saved")

        page.locator(".mesh-message-row").nth(0).locator(".mesh-content").fill(
            "You help {{company}} customers ({{plan}} plan). Be brief."
        )
        page.click("input[name=_continue]")
        page.wait_for_url("**/change/")
        expect(page.locator(".messagelist")).to_contain_text("Saved as version 2")

        page.click("#compare-versions")
        page.wait_for_url("**/diff/**")
        browser.check("tenant-admin-template-diff")
        page.select_option("#id_a", "1")
        page.select_option("#id_b", "2")
        page.click("#version-diff-form input[type=submit]")
        expect(page.locator("#version-diff .diff_chg").first).to_be_visible()
        expect(page.locator("#version-diff")).to_contain_text("Be brief.")
        page.click("#restore-old")
        browser.check("tenant-admin-template-restore-confirm")
        page.click("input[type=submit][value='Restore version 1']")
        page.wait_for_url("**/change/")
        expect(page.locator(".messagelist")).to_contain_text("Restored version 1 as version 3")
        browser.check("tenant-admin-template-restored")


def test_a_tenant_admin_builds_previews_edits_diffs_and_restores_a_template(
    admin_gateway: GatewayServer, tenant_acme: Tenant, acme_key: CreatedKey, tenant_globex: Tenant
) -> None:
    role_user("ada-acme", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)

    in_browser_thread(lambda: build_edit_diff_restore(admin_gateway.base_url))

    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    versions = httpx.get(f"{admin_gateway.base_url}/v1/templates/support-reply/versions", headers=headers)
    assert versions.status_code == 200, versions.text
    by_number = {v["version"]: v for v in versions.json()["data"]}
    assert sorted(by_number) == [1, 2, 3]
    assert (
        by_number[3]["messages"]
        == by_number[1]["messages"]
        == [
            {"role": "system", "content": "You help {{company}} customers on the {{plan}} plan."},
            {"role": "user", "content": "Question: {{question}}"},
        ]
    )
    assert by_number[3]["variables"] == [{"name": "plan", "default": "Free", "description": ""}]
    rendered = httpx.post(
        f"{admin_gateway.base_url}/v1/templates/support-reply/render",
        headers=headers,
        json={"variables": {"company": "Acme", "question": "Hi"}},
    )
    assert rendered.status_code == 200, rendered.text
    assert "on the Free plan" in rendered.text
