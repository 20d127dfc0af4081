"""The admin for finance, over HTTP as a browser uses it: the finance group reads every tenant's usage
and changes nothing; tenant admins see only their tenant; the report and its CSV equal the events."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from django.db import connection

from keys.models import Tenant
from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.usage.conftest import admin_login, event_sums, ledger_events, make_staff
from usage.models import UsageDailyRollup, UsageEvent
from usage.rollups import usage_rollups_refresh

EVENTS = "/admin/usage/usageevent/"
REPORT = "/admin/usage/usagereport/"
CSV = "/admin/usage/usagereport/csv/"
T = TypeVar("T")


@pytest.fixture
def two_tenants_usage(api_url: str, acme_key: CreatedKey, globex_key: CreatedKey) -> dict[str, list[str]]:
    """Request ids per tenant: acme three (one streamed, one failed), globex two."""
    ids: dict[str, list[str]] = {"acme": [], "globex": []}
    plan = [
        ("acme", acme_key, chat_body(session_id="checkout")),
        ("acme", acme_key, chat_body(stream=True, session_id="checkout")),
        ("acme", acme_key, chat_body(mock={"status": 500})),
        ("globex", globex_key, chat_body(session_id="globex-secret-session")),
        ("globex", globex_key, chat_body(model="openai/gpt-4o")),
    ]
    for tenant, key, body in plan:
        response = httpx.post(
            f"{api_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key.plaintext}"}
        )
        ids[tenant].append(response.headers["X-Request-Id"])
    ledger_events(ids["acme"] + ids["globex"])
    usage_rollups_refresh()
    return ids


@pytest.fixture
def acme_admin_http(gateway: GatewayServer, tenant_acme: Tenant) -> Iterator[httpx.Client]:
    """A tenant admin of acme holding the same usage permissions as finance."""
    make_staff(
        "alice-acme", "view_usageevent", "view_usagereport", "export_usage_csv", "view_all_tenants_usage",
        tenant=tenant_acme,
    )  # fmt: skip
    with closing(admin_login(gateway.base_url, "alice-acme", "alice-acme-pass-1")) as client:
        yield client


def totals_cells(html: str) -> dict[str, str]:
    """The report's totals, raw (each card also carries its exact value beside the formatted one)."""
    cards = html[html.index('id="usage-totals"') :]
    return dict(re.findall(r'data-metric="(\w+)" data-raw="([^"]*)"', cards[: cards.index("</div>\n\n")]))


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_finance_reads_every_tenants_usage(
    finance_http: httpx.Client, two_tenants_usage: dict[str, list[str]]
) -> None:
    listing = finance_http.get(EVENTS)
    found = finance_http.get(EVENTS, params={"q": two_tenants_usage["globex"][0]})
    by_session = finance_http.get(EVENTS, params={"q": "checkout"})
    event = UsageEvent.objects.get(request_id=two_tenants_usage["acme"][0])
    detail = finance_http.get(f"{EVENTS}{event.pk}/change/")

    assert listing.status_code == 200
    assert all(rid in listing.text for rid in two_tenants_usage["acme"] + two_tenants_usage["globex"])
    assert found.status_code == 200 and two_tenants_usage["globex"][0] in found.text
    assert not any(rid in found.text for rid in two_tenants_usage["acme"])
    assert {rid for rid in two_tenants_usage["acme"] if rid in by_session.text} == set(
        two_tenants_usage["acme"][:2]
    )
    assert detail.status_code == 200 and event.request_id in detail.text
    assert 'name="_save"' not in detail.text  # read-only: no form to submit


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/keys/apikey/"),
        ("GET", "/admin/keys/apikey/add/"),
        ("GET", "/admin/keys/tenant/"),
        ("GET", "/admin/auth/user/"),
        ("GET", "/admin/routing/catalogmodel/"),
        ("GET", "/admin/templates_app/prompttemplate/"),
        ("GET", EVENTS + "add/"),
        ("POST", EVENTS + "{event}/delete/"),
        ("POST", EVENTS + "{event}/change/"),
    ],
)
def test_finance_can_change_nothing(
    finance_http: httpx.Client, two_tenants_usage: dict[str, list[str]], method: str, path: str
) -> None:
    event = UsageEvent.objects.get(request_id=two_tenants_usage["acme"][0])
    token = finance_http.cookies.get("csrftoken") or ""

    response = finance_http.request(
        method, path.format(event=event.pk), data={"csrfmiddlewaretoken": token, "post": "yes"}
    )

    assert response.status_code == 403
    assert UsageEvent.objects.filter(pk=event.pk).exists()


def test_finance_admin_index_lists_usage_only(finance_http: httpx.Client, two_tenants_usage: object) -> None:
    index = finance_http.get("/admin/")

    assert index.status_code == 200
    assert EVENTS in index.text and REPORT in index.text
    assert "/admin/keys/" not in index.text and "/admin/routing/" not in index.text


def test_tenant_admin_sees_only_their_tenants_usage(
    acme_admin_http: httpx.Client, two_tenants_usage: dict[str, list[str]], tenant_globex: Tenant
) -> None:
    listing = acme_admin_http.get(EVENTS, params={"tenant": str(tenant_globex.pk)})
    globex_event = UsageEvent.objects.get(request_id=two_tenants_usage["globex"][0])
    foreign = acme_admin_http.get(f"{EVENTS}{globex_event.pk}/change/")
    missing = acme_admin_http.get(f"{EVENTS}999999999/change/")
    report = acme_admin_http.get(REPORT, params={"group_by": "session_id", "tenant": str(tenant_globex.pk)})
    exported = csv_rows(acme_admin_http.get(CSV, params={"tenant": str(tenant_globex.pk)}).text)
    globex_rollup = UsageDailyRollup.objects.filter(tenant=tenant_globex).first()
    assert globex_rollup is not None
    rollup_page = acme_admin_http.get(f"{REPORT}{globex_rollup.pk}/change/")  # the report has no row pages

    assert not any(rid in listing.text for rid in two_tenants_usage["globex"])
    assert all(rid in listing.text for rid in two_tenants_usage["acme"])
    assert "globex" not in listing.text  # not even in a filter
    assert foreign.status_code == missing.status_code == 302  # exactly like an id that does not exist
    assert report.status_code == 200 and "globex" not in report.text
    assert totals_cells(report.text)["requests"] == "3"
    assert sorted(row["request_id"] for row in exported) == sorted(two_tenants_usage["acme"])
    assert rollup_page.status_code == 404


def test_staff_without_usage_permissions_see_nothing(
    gateway: GatewayServer, two_tenants_usage: object
) -> None:
    make_staff("sam-staff")
    with closing(admin_login(gateway.base_url, "sam-staff", "sam-staff-pass-1")) as client:
        statuses = [client.get(path).status_code for path in (EVENTS, REPORT, CSV)]

    assert statuses == [403, 403, 403]


def test_report_totals_and_csv_sums_equal_the_events(
    finance_http: httpx.Client, two_tenants_usage: object, tenant_acme: Tenant
) -> None:
    everyone = finance_http.get(REPORT, params={"group_by": "tenant"})
    acme_only = finance_http.get(REPORT, params={"tenant": str(tenant_acme.pk)})
    with finance_http.stream("GET", CSV) as download:
        assert download.headers["content-type"].startswith("text/csv")
        assert "content-length" not in download.headers  # streamed
        exported = csv_rows(download.read().decode())

    sums = event_sums()
    cells = totals_cells(everyone.text)
    assert (int(cells["requests"]), int(cells["prompt_tokens"]), Decimal(cells["cost_usd"])) == (
        sums["requests"], sums["prompt_tokens"], sums["cost_usd"],
    )  # fmt: skip
    assert int(totals_cells(acme_only.text)["requests"]) == event_sums(tenant_id=tenant_acme.pk)["requests"]
    assert "<svg" in everyone.text and 'class="usage-bar"' in everyone.text
    assert len(exported) == sums["requests"]
    assert sum(int(row["prompt_tokens"]) for row in exported) == sums["prompt_tokens"]
    assert sum(int(row["completion_tokens"]) for row in exported) == sums["completion_tokens"]
    assert sum(Decimal(row["cost_usd"]) for row in exported) == sums["cost_usd"]


CSV_SEED_EVENTS = 50_000


def peak_rss_during(processes: list[Any], action: Callable[[], T]) -> tuple[T, int]:
    """`action`'s result and the largest RSS growth of any of `processes` while it ran."""
    baseline = {p.pid: p.memory_info().rss for p in processes}
    peak = dict(baseline)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for p in processes:
                peak[p.pid] = max(peak[p.pid], p.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[pid] - baseline[pid] for pid in baseline)


@pytest.mark.slow
def test_a_large_export_streams_in_flat_memory(
    gateway: GatewayServer, finance_http: httpx.Client, acme_key: CreatedKey
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {UsageEvent._meta.db_table} (request_id, tenant_id, api_key_id, session_id, "
            "template_id, model_requested, model_served, provider, attempts, prompt_tokens, "
            "completion_tokens, cached_tokens, tokens_estimated, cost_usd, http_status, error_code, "
            "streamed, cancelled, created_at) "
            "SELECT 'req_bulk_' || n, %s, %s, 'bulk-session-' || (n %% 97), '', 'openai/gpt-4o', "
            "'openai/gpt-4o', 'openai', '[]', 100 + n %% 50, 20 + n %% 7, 0, false, 0.000123456, 200, '', "
            "false, false, now() - make_interval(secs => n %% 86400) FROM generate_series(1, %s) AS n",
            [acme_key.api_key.tenant_id, acme_key.api_key.pk, CSV_SEED_EVENTS],
        )
    workers = psutil.Process(gateway.process.pid).children()  # type: ignore[union-attr]

    def download() -> tuple[int, int, int]:
        rows, tokens, size = 0, 0, 0
        with finance_http.stream("GET", CSV, params={"date_from": "2000-01-01"}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            next(lines)
            for line in lines:
                rows += 1
                tokens += int(line.split(",")[10])
                size += len(line)
        return rows, tokens, size

    (rows, prompt_tokens, size), growth = peak_rss_during(workers, download)

    assert (rows, prompt_tokens) == (CSV_SEED_EVENTS, event_sums()["prompt_tokens"])
    assert size > 7_000_000  # ~8 MB of CSV went through… (held in memory, a worker grows by ~65 MB)
    assert growth < 32_000_000, f"a gateway worker grew by {growth / 1e6:.0f} MB"  # …without being held
