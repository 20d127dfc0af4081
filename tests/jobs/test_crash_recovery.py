"""A worker SIGKILLed mid-job: the job is taken over, completes exactly once, is billed once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import redis
from django.conf import settings

from jobs.models import Job
from keys.models import Tenant
from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.jobs.conftest import wait_for_job
from tests.keys.conftest import key_counter, nano
from tests.support.waiting import wait_until
from usage.models import UsageEvent


def test_a_job_whose_worker_is_killed_mid_run_completes_once_and_is_billed_once(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer, worker_factory: Any
) -> None:
    key = api_key_create(tenant=tenant_acme, name="crash", spend_cap_usd=Decimal("5"), hard_cap=True)
    client = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30)
    first = worker_factory()
    simulator.script(delay_s=3, times=1)  # the first upstream call hangs long enough to be killed in
    job = client.post("/chat/completions", json=chat_body(async_mode=True, max_tokens=50)).json()
    wait_until(lambda: simulator.requests(), timeout=15, what="the upstream call of the first run")
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "running"
    first.kill()

    worker_factory()  # a new worker: the lapsed lease lets it take the job over
    done = wait_for_job(client, job["id"], timeout=40)
    assert done["status"] == "succeeded", done
    assert Job.objects.get(id=job["id"]).attempts == 2
    assert len(simulator.requests()) == 2  # the killed call and the take-over's; no third

    events = wait_until(
        lambda: list(UsageEvent.objects.filter(request_id=job["request_id"])), what="the job's usage event"
    )
    assert len(events) == 1
    assert UsageEvent.objects.filter(tenant=tenant_acme).count() == 1
    assert events[0].completion_tokens == done["result"]["usage"]["completion_tokens"]
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(events[0].cost_usd)  # hold released
    client.close()
