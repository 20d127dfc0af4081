"""The finance report in a real headless browser (Debian's chromium through Playwright): log in,
pick a range and a grouping, see the chart and the totals, download the CSV and check its sums."""

from __future__ import annotations

import csv
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import sync_playwright

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.usage.conftest import event_sums, ledger_events
from usage.rollups import usage_rollups_refresh

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.browser


@dataclass
class ReportSeen:
    """What the finance user saw and downloaded."""

    bars: dict[str, tuple[Decimal, float]] = field(default_factory=dict)  # day → (cost, bar height)
    totals: dict[str, str] = field(default_factory=dict)
    group_rows: int = 0
    csv_rows: list[dict[str, str]] = field(default_factory=list)


def browse_report(base_url: str, date_from: dt.date, date_to: dt.date, downloads: Path) -> ReportSeen:
    """Drive chromium through the report as a person would. Playwright's sync API runs an event loop
    in its thread, where Django refuses database calls: the test runs this in a thread of its own."""
    seen = ReportSeen()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{base_url}/admin/login/?next=/admin/usage/usagereport/")
        page.fill("#id_username", "fiona-finance")
        page.fill("#id_password", "finance-pass-1")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/usage/usagereport/")
        page.fill("#id_date_from", date_from.isoformat())
        page.fill("#id_date_to", date_to.isoformat())
        page.select_option("#id_group_by", "model")
        page.click("input[value=Show]")
        page.wait_for_selector("#usage-chart svg")
        for bar in page.locator("#usage-chart svg .usage-bar").all():
            day, cost, height = (
                bar.get_attribute(name) or "" for name in ("data-day", "data-cost", "height")
            )
            seen.bars[day] = (Decimal(cost), float(height))
        for metric in ("requests", "prompt_tokens", "completion_tokens", "cost_usd"):
            seen.totals[metric] = page.inner_text(f'#usage-totals td[data-metric="{metric}"]')
        seen.group_rows = page.locator("#usage-groups tbody tr").count()
        with page.expect_download() as downloading:
            page.click("#usage-csv")
        saved = downloads / "usage.csv"
        downloading.value.save_as(saved)
        browser.close()
    with saved.open(newline="") as file:
        seen.csv_rows = list(csv.DictReader(file))
    return seen


def test_finance_user_reads_the_report_and_downloads_a_csv_matching_the_events(
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
    ledger_events(ids)
    usage_rollups_refresh()
    today = dt.datetime.now(dt.UTC).date()

    with ThreadPoolExecutor(max_workers=1) as browser_thread:
        seen = browser_thread.submit(
            browse_report, gateway.base_url, today - dt.timedelta(days=6), today, tmp_path
        ).result(timeout=120)

    sums = event_sums()
    assert len(seen.bars) == 7 and seen.bars[today.isoformat()][0] == sums["cost_usd"]
    assert seen.bars[today.isoformat()][1] > 0
    assert all(cost == 0 for day, (cost, _) in seen.bars.items() if day != today.isoformat())
    assert seen.totals == {
        "requests": str(sums["requests"]),
        "prompt_tokens": str(sums["prompt_tokens"]),
        "completion_tokens": str(sums["completion_tokens"]),
        "cost_usd": f"{sums['cost_usd']:.9f}",
    }
    assert seen.group_rows == 2  # gpt-4o-mini and gpt-4o
    rows = seen.csv_rows
    assert sorted(row["request_id"] for row in rows) == sorted(ids)
    assert sum(Decimal(row["cost_usd"]) for row in rows) == sums["cost_usd"]
    assert sum(int(row["prompt_tokens"]) for row in rows) == sums["prompt_tokens"]
    assert sum(int(row["completion_tokens"]) for row in rows) == sums["completion_tokens"]
    assert {row["tenant"] for row in rows} == {"acme", "globex"}
