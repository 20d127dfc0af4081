"""Helpers for the usage tests: waiting for the ledger, reading the write-ahead stream, admin sessions."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
import redis
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db.models import Count, Sum

from keys.models import Tenant, TenantMember
from keys.services import CreatedKey
from routing.models import CatalogModel
from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.gateway import GatewayServer
from tests.support.waiting import wait_until as wait_until  # re-exported for the usage tests
from usage.codec import event_decode
from usage.models import UsageDailyKeyRollup, UsageDailyRollup, UsageEvent, UsageMonthlySessionRollup
from usage.recording import PAYLOAD_FIELD, STREAM
from usage.roles import FINANCE_GROUP, finance_group_sync
from usage.types import TokenUsage, UsageEventData

SUMMED = ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")


def ledger_events(
    request_ids: list[str], *, timeout: float = 10.0, final: bool = True
) -> dict[str, UsageEvent]:
    """The ledger rows of `request_ids`, once all of them landed (the flusher runs in the background);
    with `final`, once no stream's provisional entry is left among them."""

    def probe() -> dict[str, UsageEvent] | None:
        rows = {e.request_id: e for e in UsageEvent.objects.filter(request_id__in=request_ids)}
        if final and any(row.provisional for row in rows.values()):
            return None
        return rows if len(rows) == len(set(request_ids)) else None

    return wait_until(probe, timeout=timeout, what=f"{len(request_ids)} ledger events")


def stream_events() -> list[UsageEventData]:
    """What the write-ahead stream holds right now (not yet flushed)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(STREAM))
    return [event_decode(fields[PAYLOAD_FIELD]) for _, fields in entries]


def catalog_cost(model_id: str, prompt: int, completion: int, cached: int = 0) -> Decimal:
    """USD at the catalog's prices, computed here from the price table (not by the gateway's code)."""
    row = CatalogModel.objects.get(model_id=model_id)
    cached_price = row.cached_input_per_mtok_usd
    if cached_price is None:
        cached_price = row.input_per_mtok_usd
    total = (
        (prompt - cached) * row.input_per_mtok_usd
        + cached * cached_price
        + completion * row.output_per_mtok_usd
    )
    return total / Decimal(1_000_000)


def event_sums(**filters: Any) -> dict[str, Any]:
    sums = UsageEvent.objects.filter(**filters).aggregate(
        requests=Count("id"), **{name: Sum(name) for name in SUMMED}
    )
    return {name: value or 0 for name, value in sums.items()}


def rollup_sums(**filters: Any) -> dict[str, Any]:
    sums = UsageDailyRollup.objects.filter(**filters).aggregate(
        requests=Sum("requests"), **{name: Sum(name) for name in SUMMED}
    )
    return {name: value or 0 for name, value in sums.items()}


def rollups_by_slice() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every rollup row, keyed by its slice: compared whole, not just summed."""
    return {
        (r.day, r.tenant_id, r.api_key_id, r.session_id, r.model): (
            r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost_usd,
        )
        for r in UsageDailyRollup.objects.all()
    }  # fmt: skip


def key_rollups_by_slice() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every session-free rollup row, keyed by its slice."""
    return {
        (r.day, r.tenant_id, r.api_key_id, r.model): (
            r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost_usd,
        )
        for r in UsageDailyKeyRollup.objects.all()
    }  # fmt: skip


def session_rollups_without_session() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The session grain summed over sessions: what the session-free grain must hold."""
    summed: dict[tuple[Any, ...], list[Any]] = {}
    for (day, tenant_id, key_id, _session, model), values in rollups_by_slice().items():
        total = summed.setdefault((day, tenant_id, key_id, model), [0, 0, 0, 0, 0, Decimal(0)])
        for index, value in enumerate(values):
            total[index] += value
    return {slice_: tuple(values) for slice_, values in summed.items()}


@pytest.fixture
def finance_user(transactional_db: None) -> User:
    """A staff user whose only grant is membership of the "finance" group."""
    finance_group_sync(django_apps)  # the migration made it; transactional tests' flushes remove it
    user = User.objects.create_user("fiona-finance", password="finance-pass-1", is_staff=True)
    user.groups.add(Group.objects.get(name=FINANCE_GROUP))
    return user


def admin_login(base_url: str, username: str, password: str) -> httpx.Client:
    """An httpx session logged in through the admin's login form, as a browser does."""
    client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    response = client.post(
        "/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        },
        headers={"Referer": f"{base_url}/admin/login/"},
    )
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text[:500]
    return client


@pytest.fixture
def finance_http(gateway: GatewayServer, finance_user: User) -> Iterator[httpx.Client]:
    with closing(admin_login(gateway.base_url, "fiona-finance", "finance-pass-1")) as client:
        yield client


@pytest.fixture
def usage_gateway_env(simulator: SimulatorServer) -> Callable[..., dict[str, str]]:
    """`gateway_env` for extra gateways and Celery workers of these tests."""

    def build(**overrides: str) -> dict[str, str]:
        return gateway_env(simulator, **overrides)

    return build


def tenant_ids(*tenants: Tenant) -> list[int]:
    return [tenant.pk for tenant in tenants]


def make_staff(username: str, *codenames: str, tenant: Tenant | None = None) -> User:
    user = User.objects.create_user(username, password=f"{username}-pass-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    if tenant is not None:
        TenantMember.objects.create(user=user, tenant=tenant)
    return user


# Events written as the flusher writes them, and what the session rollups must hold.
DAY_S = 86400
Sums = tuple[int, int, int, int, int, Decimal]


def usage_event(
    key: CreatedKey, *, days_ago: float, session: str, cost: Decimal, failed: bool = False
) -> UsageEventData:
    return UsageEventData(
        request_id=f"req_{uuid.uuid4().hex}",
        tenant_id=key.api_key.tenant_id,
        key_id=key.api_key.pk,
        model_requested="openai/gpt-4o-mini",
        model_served="openai/gpt-4o-mini",
        session_id=session or None,
        started_at=time.time() - days_ago * DAY_S,
        tokens=TokenUsage(prompt_tokens=int(cost * 10**7) % 900 + 1, completion_tokens=7, cached_tokens=1),
        cost_usd=cost,
        http_status=502 if failed else 200,
    )


def history(key: CreatedKey, sessions: list[str], *, seed: int, count: int = 120) -> list[UsageEventData]:
    """`count` events over the last 75 days (three calendar months or four), sessions drawn from
    `sessions`, costs to the nano-dollar."""
    rng = random.Random(seed)
    return [
        usage_event(
            key,
            days_ago=rng.uniform(0, 75),
            session=rng.choice(sessions),
            cost=Decimal(rng.randint(1, 5_000_000)) / Decimal(10**9),
            failed=rng.random() < 0.1,
        )
        for _ in range(count)
    ]


def event_totals(events: list[UsageEvent]) -> Sums:
    return (
        len(events), sum(e.http_status >= 400 for e in events), sum(e.prompt_tokens for e in events),
        sum(e.completion_tokens for e in events), sum(e.cached_tokens for e in events),
        sum((e.cost_usd for e in events), Decimal(0)),
    )  # fmt: skip


def months_from_events() -> dict[tuple[dt.date, int, str], Sums]:
    """What the monthly session rollup must hold, summed here in Python from the events."""
    grouped: dict[tuple[dt.date, int, str], list[UsageEvent]] = {}
    for e in UsageEvent.objects.all():
        month = e.created_at.astimezone(dt.UTC).date().replace(day=1)
        grouped.setdefault((month, e.tenant_id, e.session_id), []).append(e)
    return {slice_: event_totals(events) for slice_, events in grouped.items()}


def month_rollups() -> dict[tuple[dt.date, int, str], Sums]:
    return {
        (r.month, r.tenant_id, r.session_id): (
            r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost_usd,
        )
        for r in UsageMonthlySessionRollup.objects.all()
    }  # fmt: skip


def sessions_from_events(
    date_from: dt.date, date_to: dt.date, tenant: Tenant | None = None
) -> dict[str, Sums]:
    """Per session_id over the range (sessions of the same name in two tenants summed, as finance's
    all-tenant report groups them), from the events."""
    grouped: dict[str, list[UsageEvent]] = {}
    events = UsageEvent.objects.all() if tenant is None else UsageEvent.objects.filter(tenant=tenant)
    for e in events:
        if date_from <= e.created_at.astimezone(dt.UTC).date() <= date_to:
            grouped.setdefault(e.session_id or "(none)", []).append(e)
    return {session: event_totals(events) for session, events in grouped.items()}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
