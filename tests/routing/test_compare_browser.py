"""A tenant admin compares two models in a real headless browser: picks their key, types a
message, ticks the models, runs, and sees the answers side by side with latency, tokens and cost
(styled as the admin, no broken asset, screenshots saved)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from keys.models import Tenant
from keys.roles import TENANT_ADMIN_GROUP
from keys.services import CreatedKey
from tests.conftest import role_user
from tests.support.browser import admin_browser, in_browser_thread
from tests.support.gateway import GatewayServer
from tests.usage.conftest import wait_until
from usage.models import UsageEvent

pytestmark = pytest.mark.browser
PAGE = "/admin/routing/modelcomparison/"
MINI, FOUR = "openai/gpt-4o-mini", "openai/gpt-4o"
MONEY = re.compile(r"^(<)?\$\d{1,3}(,\d{3})*\.\d{2,6}$")


def compare_in_browser(base_url: str, key_prefix: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with admin_browser(base_url) as browser:
        browser.login("ada-acme", "acme-pass-1")
        index = browser.visit("/admin/", "compare-admin-index")
        seen["index_link"] = index.locator(f'a[href="{PAGE}"]').count()
        page = browser.visit(PAGE, "compare-form")
        seen["keys"] = page.locator("#id_api_key option").all_inner_texts()
        page.select_option("#id_api_key", label=next(k for k in seen["keys"] if key_prefix in k))
        page.fill("#id_prompt", "Which colour is the sky?")
        page.check(f'#compare-form input[name=models][value="{MINI}"]')
        page.check(f'#compare-form input[name=models][value="{FOUR}"]')
        page.fill("#id_max_tokens", "64")
        with page.expect_navigation():
            page.click("#compare-run")
        expect(page.locator("#compare-results .compare-result")).to_have_count(2)
        browser.check("compare-results")
        cards = page.locator("#compare-results .compare-result")
        seen["models"] = [card.get_attribute("data-model") for card in cards.all()]
        seen["boxes"] = [card.bounding_box() for card in cards.all()]
        seen["answers"] = page.locator("#compare-results .compare-answer").all_inner_texts()
        seen["costs"] = page.locator("#compare-results .compare-cost").all_inner_texts()
        seen["raw_costs"] = [
            c.get_attribute("data-raw") for c in page.locator("#compare-results .compare-cost").all()
        ]
        seen["latencies"] = page.locator("#compare-results .compare-latency").all_inner_texts()
        seen["comparison_id"] = page.locator("#compare-id").inner_text()
        seen["card_border"] = cards.first.evaluate("e => getComputedStyle(e).borderTopStyle")
        seen["grid"] = page.locator("#compare-results").evaluate("e => getComputedStyle(e).display")
        page.uncheck(f'#compare-form input[name=models][value="{FOUR}"]')
        with page.expect_navigation():
            page.click("#compare-run")
        browser.check("compare-one-model-error")
        seen["one_model_error"] = page.locator(".compare-field-models .errorlist").inner_text()
    return seen


def test_a_tenant_admin_sees_two_models_answers_side_by_side(
    admin_gateway: GatewayServer, tenant_acme: Tenant, acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    role_user("ada-acme", "acme-pass-1", TENANT_ADMIN_GROUP, tenant_acme)
    seen = in_browser_thread(lambda: compare_in_browser(admin_gateway.base_url, acme_key.api_key.prefix))

    assert seen["index_link"] >= 1
    assert len(seen["keys"]) == 1 and acme_key.api_key.prefix in seen["keys"][0]  # only acme's key
    assert globex_key.api_key.prefix not in " ".join(seen["keys"])
    assert seen["models"] == [FOUR, MINI]  # in the order the page lists them
    left, right = seen["boxes"]
    assert abs(left["y"] - right["y"]) < 1 and right["x"] >= left["x"] + left["width"]  # side by side
    assert seen["grid"] == "grid" and seen["card_border"] == "solid"  # compare.css applied
    assert all(answer.strip() for answer in seen["answers"])
    assert all(MONEY.match(cost) for cost in seen["costs"]), seen["costs"]
    assert all(re.fullmatch(r"\d+ ms", latency) for latency in seen["latencies"])
    assert seen["one_model_error"] == "Pick at least 2 and at most 4 models."

    def events() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.filter(comparison_id=seen["comparison_id"]))
        return rows if len(rows) == 2 else None

    rows = wait_until(events, timeout=10, what="the page's comparison events")
    assert sorted(e.cost_usd for e in rows) == sorted(Decimal(c) for c in seen["raw_costs"])
    assert all(e.api_key_id == acme_key.api_key.pk for e in rows)
