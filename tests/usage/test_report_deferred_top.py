"""The report page does not wait for its "Top sessions" table (the one high-cardinality grouping):
unless it groups by session, the page carries a slot the browser fills from the report's top/ URL,
which answers the same table as the page used to hold, within the viewer's tenant scope."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal

import httpx
import pytest

from keys.models import Tenant
from keys.services import CreatedKey
from tests.support.gateway import GatewayServer
from tests.usage.conftest import admin_login, history, make_staff, sessions_from_events, today
from usage.money import share
from usage.rollups import usage_rollups_refresh
from usage.store import usage_events_store

REPORT = "/admin/usage/usagereport/"
TOP = "/admin/usage/usagereport/top/"


def top_rows(fragment: str, group_by: str) -> list[tuple[str, str, str]]:
    """(label, raw spend shown, share) of each row of the top table `group_by`."""
    table = fragment[fragment.index(f'id="usage-top-{group_by}"') :]
    table = table[: table.index("</table>")]
    cells = re.findall(
        r'<td class="mesh-ellipsis" title="[^"]*">([^<]*)</td><td class="num">[^<]*</td>'
        r'<td class="num">([^<]*)</td><td class="num">([^<]*)</td>',
        table,
    )
    return [(html.unescape(label), spend, pct) for label, spend, pct in cells]


def slot_url(page: str, group_by: str) -> str:
    found = re.search(r'data-top-src="([^"]+)"', page)
    assert found, page[:2000]
    url = html.unescape(found.group(1))
    assert url.startswith(TOP) and f"top={group_by}" in url, url
    return url


def expected_top(tenant: Tenant | None = None) -> list[tuple[str, Decimal]]:
    t = today()  # the report's default range: the last 30 days
    sessions = sessions_from_events(t - dt.timedelta(days=29), t, tenant)
    ranked = sorted(sessions.items(), key=lambda item: (-item[1][5], item[0]))
    return [(session, sums[5]) for session, sums in ranked[:10]]


@pytest.fixture
def usage_of_two_tenants(acme_key: CreatedKey, globex_key: CreatedKey) -> None:
    usage_events_store(events=history(acme_key, ["", "checkout", "search", "shared"], seed=7, count=80))
    usage_events_store(events=history(globex_key, ["shared", "globex-secret"], seed=8, count=80))
    usage_rollups_refresh()


@pytest.fixture
def acme_admin_http(gateway: GatewayServer, tenant_acme: Tenant) -> Iterator[httpx.Client]:
    make_staff("alice-acme", "view_usagereport", "view_all_tenants_usage", tenant=tenant_acme)
    with closing(admin_login(gateway.base_url, "alice-acme", "alice-acme-pass-1")) as client:
        yield client


def test_the_page_defers_top_sessions_and_its_url_answers_the_table(
    finance_http: httpx.Client, usage_of_two_tenants: None
) -> None:
    params = {"group_by": "model"}
    page = finance_http.get(REPORT, params=params)
    assert page.status_code == 200
    assert 'id="usage-top-session_id"' not in page.text  # not computed with the page
    assert 'id="usage-top-key"' in page.text and 'id="usage-top-model"' in page.text
    fragment = finance_http.get(slot_url(page.text, "session_id"))
    total = re.search(r'data-metric="cost_usd" data-raw="([^"]+)"', page.text)
    assert total

    assert fragment.status_code == 200
    shown = top_rows(fragment.text, "session_id")
    expected = expected_top()
    assert [label for label, _, _ in shown] == [s or "(none)" for s, _ in expected]
    assert [pct for _, _, pct in shown] == [share(cost, Decimal(total.group(1))) for _, cost in expected]
    # Grouped by session, the page holds the table itself (the main table's first ten).
    by_session = finance_http.get(REPORT, params={**params, "group_by": "session_id"})
    assert "data-top-src" not in by_session.text
    assert top_rows(by_session.text, "session_id") == shown


def test_a_tenant_admin_gets_only_their_tenants_top_sessions(
    acme_admin_http: httpx.Client, usage_of_two_tenants: None, tenant_acme: Tenant, tenant_globex: Tenant
) -> None:
    page = acme_admin_http.get(REPORT, params={"tenant": str(tenant_globex.pk)})
    fragment = acme_admin_http.get(slot_url(page.text, "session_id"))

    assert fragment.status_code == 200
    labels = [label for label, _, _ in top_rows(fragment.text, "session_id")]
    assert labels == [s or "(none)" for s, _ in expected_top(tenant_acme)]
    assert "globex-secret" not in fragment.text


def test_the_top_url_refuses_bad_requests_and_strangers(
    gateway: GatewayServer, finance_http: httpx.Client, usage_of_two_tenants: None
) -> None:
    make_staff("sam-staff", "view_usageevent")
    with closing(admin_login(gateway.base_url, "sam-staff", "sam-staff-pass-1")) as stranger:
        refused = stranger.get(TOP, params={"top": "session_id"})
    unknown_top = finance_http.get(TOP, params={"top": "password"})
    bad_dates = finance_http.get(TOP, params={"top": "session_id", "date_from": "2026-13-40"})
    too_long = finance_http.get(TOP, params={"top": "session_id", "date_from": "0001-01-01"})

    assert refused.status_code == 403
    assert unknown_top.status_code == 400 and "top must be one of" in unknown_top.text
    assert bad_dates.status_code == 400 and too_long.status_code == 400
