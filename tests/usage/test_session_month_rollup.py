"""The monthly session rollup that "Top sessions" and "group by session" read always equals its events:
after late and out-of-order events, after every slice recomputed again, after events purged; the
session report over any range (whole months less the days left out, or the days) equals the events
summed, the not-yet-rolled-up ones included; two tenants never see each other's sessions in it."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command

from keys.models import Tenant
from keys.services import CreatedKey
from tests.support.gateway import GatewayServer
from tests.usage.conftest import (
    DAY_S,
    Sums,
    admin_login,
    history,
    make_staff,
    month_rollups,
    months_from_events,
    sessions_from_events,
    today,
    usage_event,
)
from usage.models import UsageEvent, UsageMonthlySessionRollup, UsageRollupStale
from usage.rollups import usage_rollups_refresh
from usage.store import usage_events_store

TABLE_CSV = "/admin/usage/usagereport/table.csv"


def sessions_of_table_csv(
    client: httpx.Client, date_from: dt.date, date_to: dt.date, **params: str
) -> dict[str, Sums]:
    response = client.get(
        TABLE_CSV,
        params={"group_by": "session_id", "date_from": str(date_from), "date_to": str(date_to), **params},
    )
    assert response.status_code == 200, response.text[:500]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    table = {
        row["session_id"]: (
            int(row["requests"]), int(row["errors"]), int(row["prompt_tokens"]),
            int(row["completion_tokens"]), int(row["cached_tokens"]), Decimal(row["cost_usd"]),
        )
        for row in rows
    }  # fmt: skip
    total = table.pop("TOTAL")
    summed = [sum(column) for column in zip(*table.values(), strict=True)] if table else [0] * 6
    assert summed == list(total), (summed, total)  # the page's total is its rows' sum
    return table


def report_ranges() -> list[tuple[str, dt.date, dt.date]]:
    """Ranges read from whole months less days, from days, and both: presets and edges."""
    t = today()
    this_month = t.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    two_months_ago = (last_month - dt.timedelta(days=1)).replace(day=1)
    return [
        ("today", t, t),
        ("7 days", t - dt.timedelta(days=6), t),
        ("30 days", t - dt.timedelta(days=29), t),
        ("this month", this_month, t),
        ("last month", last_month, this_month - dt.timedelta(days=1)),
        ("last month but its first and last day", last_month + dt.timedelta(days=1),
         this_month - dt.timedelta(days=2)),
        ("mid-month to mid-month", two_months_ago + dt.timedelta(days=14),
         last_month + dt.timedelta(days=14)),
        ("80 days to a week ahead", t - dt.timedelta(days=79), t + dt.timedelta(days=7)),
    ]  # fmt: skip


@pytest.fixture
def acme_admin_http(gateway: GatewayServer, tenant_acme: Tenant) -> Iterator[httpx.Client]:
    """A tenant admin of acme holding every usage permission finance holds."""
    make_staff(
        "alice-acme", "view_usageevent", "view_usagereport", "export_usage_csv", "view_all_tenants_usage",
        tenant=tenant_acme,
    )  # fmt: skip
    with closing(admin_login(gateway.base_url, "alice-acme", "alice-acme-pass-1")) as client:
        yield client


def test_the_month_rollup_equals_its_events_after_late_events_reruns_and_purges(
    acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    usage_events_store(events=history(acme_key, ["", "checkout", "search", "shared"], seed=1))
    usage_events_store(events=history(globex_key, ["", "shared", "globex-batch"], seed=2))
    usage_rollups_refresh()
    assert month_rollups() == months_from_events()
    assert len({month for month, _, _ in month_rollups()}) >= 3

    # Late and out of order: a session seen weeks ago gets an event older than every one it had,
    # a new session appears two months back, today moves on; each day is recomputed in turn.
    late = [
        usage_event(acme_key, days_ago=74.5, session="checkout", cost=Decimal("0.000000001")),
        usage_event(acme_key, days_ago=40, session="late-arrival", cost=Decimal("1.5")),
        usage_event(globex_key, days_ago=0, session="shared", cost=Decimal("0.25"), failed=True),
    ]
    for event in late:
        usage_events_store(events=[event])
        usage_rollups_refresh()
        assert month_rollups() == months_from_events()

    # Every slice recomputed again (a rerun after a killed aggregation): nothing changes.
    rolled_up = month_rollups()
    days = UsageEvent.objects.values_list("created_at", "tenant_id")
    UsageRollupStale.objects.bulk_create(
        [UsageRollupStale(day=at.astimezone(dt.UTC).date(), tenant_id=t) for at, t in set(days)],
        ignore_conflicts=True,
    )
    usage_rollups_refresh()
    assert month_rollups() == rolled_up

    # A purge of one tenant's events of a session on the late day: its month row goes.
    purged_day = dt.datetime.fromtimestamp(late[1].started_at, dt.UTC).date()
    UsageEvent.objects.filter(session_id="late-arrival").delete()
    UsageRollupStale.objects.create(day=purged_day, tenant_id=acme_key.api_key.tenant_id)
    usage_rollups_refresh()
    assert month_rollups() == months_from_events()
    assert not UsageMonthlySessionRollup.objects.filter(session_id="late-arrival").exists()
    assert not UsageMonthlySessionRollup.objects.filter(requests__lte=0).exists()


def test_the_session_report_equals_the_events_over_any_range_stale_slices_included(
    finance_http: httpx.Client, acme_key: CreatedKey, globex_key: CreatedKey, tenant_globex: Tenant
) -> None:
    usage_events_store(events=history(acme_key, ["", "checkout", "search", "shared"], seed=3))
    usage_events_store(events=history(globex_key, ["", "shared", "globex-batch"], seed=4))
    # A session only on the 1st of last month: a range of that month without its 1st reads the
    # month's row less that day, and must not show the session at zero.
    first_of_last_month = (today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    noon = dt.datetime.combine(first_of_last_month, dt.time(12), dt.UTC)
    days_ago = (dt.datetime.now(dt.UTC) - noon).total_seconds() / DAY_S
    usage_events_store(events=[usage_event(acme_key, days_ago=days_ago, session="one-day", cost=Decimal(1))])
    usage_rollups_refresh()
    # Not yet rolled up: a day of last month (its month's row is stale) and today.
    usage_events_store(
        events=[
            usage_event(acme_key, days_ago=31, session="checkout", cost=Decimal("0.75")),
            usage_event(globex_key, days_ago=0, session="fresh", cost=Decimal("0.125")),
        ]
    )
    assert UsageRollupStale.objects.count() == 2

    for name, date_from, date_to in report_ranges():
        expected = sessions_from_events(date_from, date_to)
        assert sessions_of_table_csv(finance_http, date_from, date_to) == expected, name
        globex_only = sessions_from_events(date_from, date_to, tenant_globex)
        assert (
            sessions_of_table_csv(finance_http, date_from, date_to, tenant=str(tenant_globex.pk))
            == globex_only
        ), name
    assert UsageRollupStale.objects.count() == 2  # read from their events, not rolled up meanwhile


def api_sessions(api_url: str, key: CreatedKey, date_from: dt.date, date_to: dt.date) -> dict[str, Sums]:
    """/v1/usage grouped by session, as the key's tenant reads it, labelled as the admin table is."""
    response = httpx.get(
        f"{api_url}/usage",
        params={"group_by": "session_id", "from": str(date_from), "to": str(date_to), "limit": 1000},
        headers={"Authorization": f"Bearer {key.plaintext}"},
    )
    assert response.status_code == 200, response.text
    return {
        g["group"] or "(none)": (
            g["totals"]["requests"], g["totals"]["errors"], g["totals"]["prompt_tokens"],
            g["totals"]["completion_tokens"], g["totals"]["cached_tokens"], Decimal(g["totals"]["cost_usd"]),
        )
        for g in response.json()["data"]
    }  # fmt: skip


def test_two_tenants_never_see_each_others_sessions(
    api_url: str,
    acme_admin_http: httpx.Client,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
) -> None:
    usage_events_store(events=history(acme_key, ["checkout", "shared"], seed=5, count=60))
    usage_events_store(events=history(globex_key, ["shared", "globex-secret"], seed=6, count=60))
    usage_events_store(events=[usage_event(globex_key, days_ago=40, session="shared", cost=Decimal("9"))])
    usage_rollups_refresh()
    acme_months = {s for _, tenant, s in month_rollups() if tenant == tenant_acme.pk}
    assert acme_months == {"checkout", "shared"}  # a row per tenant: "shared" is two sessions

    for name, date_from, date_to in report_ranges():
        acme_expected = sessions_from_events(date_from, date_to, tenant_acme)
        by_admin = sessions_of_table_csv(acme_admin_http, date_from, date_to)
        # A tenant admin's tenant=… is ignored: the scope is their membership.
        asked_for_globex = sessions_of_table_csv(
            acme_admin_http, date_from, date_to, tenant=str(tenant_globex.pk)
        )
        assert by_admin == asked_for_globex == acme_expected, name
        assert api_sessions(api_url, acme_key, date_from, date_to) == acme_expected, name
        assert "globex-secret" not in by_admin, name


def test_the_rebuild_command_puts_months_back_in_line_with_their_days(
    acme_key: CreatedKey, globex_key: CreatedKey
) -> None:
    usage_events_store(events=history(acme_key, ["checkout", "shared"], seed=9, count=60))
    usage_events_store(events=history(globex_key, ["shared"], seed=10, count=60))
    usage_rollups_refresh()
    # Drift, as a worker of a release without the monthly rollup would leave it.
    UsageMonthlySessionRollup.objects.filter(session_id="checkout").delete()
    UsageMonthlySessionRollup.objects.filter(session_id="shared").update(requests=999)
    out = io.StringIO()

    call_command("usage_session_months_rebuild", stdout=out)

    assert month_rollups() == months_from_events()
    assert f"rebuilt: {len(months_from_events()):,} rows" in out.getvalue()
