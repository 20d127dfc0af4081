"""Finance reads the report in a real headless browser: presets, grouping and chart stacking, money
and token counts as people read them, readable axis ticks, and a CSV of exactly the table shown
whose sums equal the page (and the ledger)."""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.support.browser import admin_browser, in_browser_thread
from tests.support.gateway import GatewayServer
from tests.usage.conftest import event_sums, ledger_events

pytestmark = pytest.mark.browser
REPORT = "/admin/usage/usagereport/"
MONEY = re.compile(r"^-?(<)?\$\d{1,3}(,\d{3})*\.\d{2,6}$")


def browse_report(base_url: str, downloads: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with admin_browser(base_url) as browser:
        browser.login("fiona-finance", "finance-pass-1", next_path=REPORT)
        page = browser.visit("/admin/", "finance-dashboard")
        seen["dashboard_today"] = page.locator("#dash-spend-today").get_attribute("data-raw")
        seen["dashboard_tenants"] = page.locator("#dash-top-tenants").inner_text()
        page = browser.visit(REPORT, "finance-report-default")
        with page.expect_navigation():
            page.click('#usage-presets a[data-preset="7d"]')
        seen["url_7d"] = page.url
        seen["from_7d"] = page.input_value("#id_date_from")
        with page.expect_navigation():
            page.click('#usage-presets a[data-preset="today"]')
        seen["from_today"] = page.input_value("#id_date_from")
        page.select_option("#id_group_by", "model")
        page.select_option("#id_stack_by", "tenant")
        with page.expect_navigation():
            page.click("#usage-report-form input[type=submit]")
        browser.check("finance-report-by-model")
        seen["url_model"] = page.url
        seen["ticks"] = page.locator("#usage-chart .usage-tick").all_text_contents()  # SVG: no innerText
        seen["series"] = sorted(
            {b.get_attribute("data-series") for b in page.locator("#usage-chart .usage-bar").all()}
        )
        seen["money_cells"] = page.locator("#usage-groups tbody td[data-raw]").all_inner_texts()
        seen["rows"] = [
            [cell.inner_text() for cell in row.locator("td").all()]
            for row in page.locator("#usage-groups tbody tr").all()
        ]
        seen["raw_costs"] = [
            c.get_attribute("data-raw") for c in page.locator("#usage-groups tbody td[data-raw]").all()
        ]
        seen["total_cost"] = page.locator('#usage-totals [data-metric="cost_usd"]').get_attribute("data-raw")
        seen["total_requests"] = page.locator('#usage-totals [data-metric="requests"]').get_attribute(
            "data-raw"
        )
        seen["tops"] = {
            t: page.locator(f"#usage-top-{t}").inner_text() for t in ("key", "session_id", "model")
        }
        with page.expect_download() as downloading:
            page.click("#usage-table-csv")
        saved = downloads / "table.csv"
        downloading.value.save_as(saved)
        page.goto(f"{base_url}{REPORT}?date_from=0001-01-01&date_to=9999-12-31")
        browser.check("finance-report-range-too-long")
        seen["too_long"] = page.locator(".errorlist").all_inner_texts()
        page.goto(f"{base_url}{REPORT}?date_from={dt.date.today() - dt.timedelta(days=400)}&group_by=day")
        browser.check("finance-report-monthly")
        seen["long_rows"] = page.locator("#usage-groups tbody tr").count()
        seen["long_title"] = page.locator("#usage-groups").locator("xpath=preceding::h2[1]").inner_text()
    with saved.open(newline="") as file:
        seen["csv"] = list(csv.DictReader(file))
    return seen


def test_finance_switches_presets_and_grouping_and_the_csv_equals_the_page(
    gateway: GatewayServer,
    finance_user: User,
    api_url: str,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    tmp_path: Path,
) -> None:
    bodies = [chat_body(session_id="checkout"), chat_body(model="openai/gpt-4o"), chat_body(stream=True)]
    ids = [
        httpx.post(
            f"{api_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key.plaintext}"}
        ).headers["X-Request-Id"]
        for key in (acme_key, globex_key)
        for body in bodies
    ]
    ledger_events(ids)  # no rollup run: the report reads the not-yet-rolled-up tail
    today = dt.datetime.now(dt.UTC).date()

    seen = in_browser_thread(lambda: browse_report(gateway.base_url, tmp_path))

    sums = event_sums()
    assert "preset=7d" in seen["url_7d"] and seen["from_7d"] == (today - dt.timedelta(days=6)).isoformat()
    assert seen["from_today"] == today.isoformat()
    assert "group_by=model" in seen["url_model"] and "stack_by=tenant" in seen["url_model"]
    assert Decimal(seen["dashboard_today"]) == sums["cost_usd"]
    assert "acme" in seen["dashboard_tenants"] and "globex" in seen["dashboard_tenants"]
    assert seen["series"] == ["acme", "globex"]
    ticks = seen["ticks"]
    assert ticks[0] == "$0" and len(set(ticks)) == len(ticks) >= 3, ticks  # distinct, round
    assert all(re.fullmatch(r"\$0\.0*[1-9]\d?0*", tick) for tick in ticks[1:]), ticks  # no "$0.0000" top
    assert all(MONEY.match(cell) for cell in seen["money_cells"]), seen["money_cells"]
    assert not any(re.search(r"\d\.\d{7,}", cell) for row in seen["rows"] for cell in row)  # no float noise
    assert Decimal(seen["total_cost"]) == sums["cost_usd"] and int(seen["total_requests"]) == sums["requests"]
    assert "openai/gpt-4o-mini" in seen["tops"]["model"] and "checkout" in seen["tops"]["session_id"]
    assert "%" in seen["tops"]["key"]

    table = [row for row in seen["csv"] if row["model"] != "TOTAL"]
    (total,) = [row for row in seen["csv"] if row["model"] == "TOTAL"]
    assert [row["model"] for row in table] == [row[0] for row in seen["rows"]]  # the rows shown, in order
    assert [row["cost_usd"] for row in table] == seen["raw_costs"]  # raw decimals, not rounded
    assert sum(Decimal(row["cost_usd"]) for row in table) == Decimal(total["cost_usd"]) == sums["cost_usd"]
    assert sum(int(row["requests"]) for row in table) == int(total["requests"]) == sums["requests"]
    assert sum(int(row["prompt_tokens"]) for row in table) == sums["prompt_tokens"]

    assert seen["too_long"] and "at most 731 days" in seen["too_long"][0]
    assert seen["long_title"] == "By month" and seen["long_rows"] <= 15  # 400 days: months
