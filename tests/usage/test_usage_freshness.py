"""A request shows up in /v1/usage, the admin report and the admin dashboard within 5 s of its
response, without waiting for the rollup task: reports read the rollups plus the events of slices
not yet rolled up, each event counted exactly once (a stale slice is read from its events only)."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import httpx

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.usage.conftest import event_sums
from usage.models import UsageRollupStale
from usage.rollups import usage_rollups_refresh

FRESH_WITHIN_S = 5.0


def _raw(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}" data-raw="([^"]*)"', html)
    return found.group(1) if found else ""


def _report_requests(html: str) -> str:
    found = re.search(r'data-metric="requests" data-raw="(\d+)"', html)
    return found.group(1) if found else ""


def test_a_request_is_in_usage_report_and_dashboard_within_5_seconds(
    finance_http: httpx.Client,
    acme_http: httpx.Client,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    api_url: str,
) -> None:
    assert acme_http.post("/chat/completions", json=chat_body()).status_code == 200
    globex = httpx.post(
        f"{api_url}/chat/completions",
        json=chat_body(),
        headers={"Authorization": f"Bearer {globex_key.plaintext}"},
    )
    assert globex.status_code == 200
    deadline = time.monotonic() + FRESH_WITHIN_S
    while event_sums()["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    usage_rollups_refresh()  # both slices rolled up: from here, the next request is the fresh tail
    assert not UsageRollupStale.objects.exists()

    answered = acme_http.post("/chat/completions", json=chat_body(session_id="fresh"))
    assert answered.status_code == 200
    answered_at = time.monotonic()
    seen: dict[str, str] = {}
    while time.monotonic() - answered_at < FRESH_WITHIN_S:
        api = acme_http.get("/usage", params={"group_by": "session_id"}).json()
        seen["api"] = str(api["totals"]["requests"])
        seen["api_session"] = ",".join(g["group"] for g in api["data"])
        seen["report"] = _report_requests(finance_http.get("/admin/usage/usagereport/").text)
        seen["dashboard"] = _raw(finance_http.get("/admin/").text, "dash-requests-today")
        if seen["api"] == "2" and seen["report"] == "3" and seen["dashboard"] == "3":
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - answered_at
    assert (seen["api"], seen["report"], seen["dashboard"]) == ("2", "3", "3"), (seen, elapsed)
    assert "fresh" in seen["api_session"]
    assert UsageRollupStale.objects.exists()  # it came from the tail, not from a rollup run

    usage_rollups_refresh()  # and once rolled up, the same totals: nothing counted twice
    api = acme_http.get("/usage").json()
    assert api["totals"]["requests"] == 2
    assert Decimal(api["totals"]["cost_usd"]) == event_sums(tenant_id=acme_key.api_key.tenant_id)["cost_usd"]
