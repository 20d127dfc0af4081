"""Daily rollups (and the monthly session rollup) always equal the sum of their events: after a load
through the gateway with a real Celery worker and beat, and after an aggregation SIGKILLed mid-run
and run again."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from tests.conftest import chat_body
from tests.support.celery_worker import CeleryWorker
from tests.support.ledger import LedgerFlusher
from tests.usage.conftest import (
    event_sums,
    key_rollups_by_slice,
    month_rollups,
    months_from_events,
    rollup_sums,
    rollups_by_slice,
    session_rollups_without_session,
    wait_until,
)
from usage.models import UsageEvent, UsageRollupStale
from usage.recording import STREAM
from usage.tasks import usage_rollups_recompute

LOAD_REQUESTS = 2000
CONCURRENCY = 32
SESSIONS = ["", "checkout", "search", "support-bot", "nightly-batch"]


def slices_from_events() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The rollups the ledger implies, computed here with the ORM (not by the aggregator's SQL)."""
    rows = (
        UsageEvent.objects.annotate(
            day=TruncDate("created_at"), model=Coalesce(NullIf("model_served", Value("")), "model_requested")
        )
        .values("day", "tenant_id", "api_key_id", "session_id", "model")
        .annotate(
            requests=Count("id"), errors=Count("id", filter=Q(http_status__gte=400)),
            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"),
            cached=Sum("cached_tokens"), cost=Sum("cost_usd"),
        )
    )  # fmt: skip
    return {
        (r["day"], r["tenant_id"], r["api_key_id"], r["session_id"], r["model"]): (
            r["requests"], r["errors"], r["prompt"], r["completion"], r["cached"], r["cost"],
        )
        for r in rows
    }  # fmt: skip


def load_body(rng: random.Random) -> dict[str, Any]:
    """Mostly small successes; some streams, some upstream failures, some unknown models."""
    roll = rng.random()
    body = chat_body(
        model=rng.choice(["openai/gpt-4o-mini", "openai/gpt-4o"]),
        session_id=rng.choice(SESSIONS) or None,
        mock={"chunks": 2, "cached_tokens": rng.choice([0, 2])},
    )
    if roll < 0.1:
        body["stream"] = True
    elif roll < 0.13:
        body["mock"] = {"status": 500}
    elif roll < 0.15:
        body["model"] = "openai/not-in-the-catalog"
    return body


async def send_load(api_url: str, keys: list[CreatedKey]) -> list[tuple[int, str]]:
    """CONCURRENCY clients in a closed loop (aiohttp: the client's CPU must not starve the gateway)."""
    rng = random.Random(5)
    plan = [(rng.choice(keys), load_body(rng)) for _ in range(LOAD_REQUESTS)]
    results: list[tuple[int, str]] = []
    # Idle connections are dropped before the server's keep-alive timeout could close them under us.
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, keepalive_timeout=1.0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def client_loop() -> None:
            while plan:
                key, body = plan.pop()
                headers = {"Authorization": f"Bearer {key.plaintext}"}
                async with session.post(
                    f"{api_url}/chat/completions", json=body, headers=headers
                ) as response:
                    await response.read()
                    results.append((response.status, response.headers["X-Request-Id"]))

        await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    return results


@pytest.mark.slow
def test_rollups_equal_events_after_2000_requests_with_celery_beat(
    api_url: str,
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    tenant_acme: Tenant,
    ledger_flusher: LedgerFlusher,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    keys = [acme_key, globex_key, api_key_create(tenant=tenant_acme, name="acme batch")]
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    env = usage_gateway_env(MESH_USAGE_FLUSH_INTERVAL_S="0.5", MESH_USAGE_ROLLUP_INTERVAL_S="1")
    with ledger_flusher.paused(), CeleryWorker(env=env, beat=True) as worker:
        started = time.monotonic()
        results = asyncio.run(send_load(api_url, keys))
        load_s = time.monotonic() - started
        wait_until(
            lambda: (
                UsageEvent.objects.count() >= LOAD_REQUESTS
                and test_redis.xlen(STREAM) == 0
                and not UsageRollupStale.objects.exists()
            ),
            timeout=60,
            what=f"the worker to flush and roll up {LOAD_REQUESTS} events:\n{worker.output()[-3000:]}",
        )

    statuses = sorted({status for status, _ in results})
    assert statuses == [200, 404, 502], statuses
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == sorted(
        rid for _, rid in results
    )
    assert rollups_by_slice() == slices_from_events()
    assert key_rollups_by_slice() == session_rollups_without_session()
    assert month_rollups() == months_from_events()
    assert rollup_sums() == event_sums()
    for tenant_id in {key.api_key.tenant_id for key in keys}:
        assert rollup_sums(tenant_id=tenant_id) == event_sums(tenant_id=tenant_id)
    print(f"{LOAD_REQUESTS} requests through the gateway in {load_s:.1f}s")


SEED_DAYS = 250
EVENTS_PER_SLICE = 12

_SEED_SQL = f"""
INSERT INTO {UsageEvent._meta.db_table} (request_id, tenant_id, api_key_id, session_id, template_id,
    model_requested, model_served, provider, attempts, prompt_tokens, completion_tokens, cached_tokens,
    tokens_estimated, cost_usd, http_status, error_code, streamed, cancelled, created_at)
SELECT 'req_seed_' || %(tenant)s || '_' || d || '_' || n, %(tenant)s, %(key)s, 's' || (n %% 3), '',
    'openai/gpt-4o', 'openai/gpt-4o', 'openai', '[]', 10 + n, 5 + d %% 7, n %% 2,
    false, (10 + n) * 0.0000025 + (5 + d %% 7) * 0.00001, CASE WHEN n = 0 THEN 502 ELSE 200 END,
    CASE WHEN n = 0 THEN 'upstream_error' ELSE '' END, false, false,
    now() - make_interval(days => d) - make_interval(secs => n)
FROM generate_series(1, {SEED_DAYS}) AS d, generate_series(0, {EVENTS_PER_SLICE - 1}) AS n
"""


def seed_history(*keys: CreatedKey) -> None:
    """A year of past events for each key's tenant, every (day, tenant) marked stale, as the flusher would."""
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute(_SEED_SQL, {"tenant": key.api_key.tenant_id, "key": key.api_key.pk})
            cursor.execute(
                f"INSERT INTO {UsageRollupStale._meta.db_table} (day, tenant_id, generation) "
                f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date, tenant_id, 1 "
                f"FROM {UsageEvent._meta.db_table} WHERE tenant_id = %s",
                [key.api_key.tenant_id],
            )


def test_a_killed_aggregation_rerun_gives_the_same_totals(
    acme_key: CreatedKey,
    globex_key: CreatedKey,
    ledger_flusher: LedgerFlusher,
    usage_gateway_env: Callable[..., dict[str, str]],
) -> None:
    seed_history(acme_key, globex_key)
    stale_before = UsageRollupStale.objects.count()
    assert stale_before >= 2 * SEED_DAYS
    with ledger_flusher.paused():
        with CeleryWorker(env=usage_gateway_env()) as worker:
            usage_rollups_recompute.delay()
            wait_until(
                lambda: UsageRollupStale.objects.count() < stale_before * 0.8,
                timeout=30,
                what=f"the aggregation to get going:\n{worker.output()[-3000:]}",
            )
            worker.kill()  # SIGKILL mid-run: no cleanup, maybe mid-transaction
        stale_after_kill = UsageRollupStale.objects.count()
        partial = rollup_sums()

        assert 0 < stale_after_kill < stale_before, "the kill did not land mid-run"
        assert partial != event_sums()

        with CeleryWorker(env=usage_gateway_env()) as worker:
            usage_rollups_recompute.delay()
            wait_until(lambda: not UsageRollupStale.objects.exists(), timeout=60, what="the re-run")
            after_rerun = rollups_by_slice()
            # Running it again over every slice changes nothing.
            every_slice = {(day, tenant) for day, tenant, *_ in after_rerun}
            UsageRollupStale.objects.bulk_create(
                [UsageRollupStale(day=d, tenant_id=t) for d, t in every_slice]
            )
            usage_rollups_recompute.delay()
            wait_until(lambda: not UsageRollupStale.objects.exists(), timeout=60, what="the second run")

    assert after_rerun == slices_from_events()
    assert rollups_by_slice() == after_rerun
    assert key_rollups_by_slice() == session_rollups_without_session()
    # The month rows were updated by deltas: a killed run's rolled back, none applied twice.
    assert month_rollups() == months_from_events()
    assert rollup_sums() == event_sums()
