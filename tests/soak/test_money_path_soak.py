"""Soak: 5,000 requests of every kind (plain, streamed, cancelled at random points including before
the first byte, refused by rate limits and caps, failed by faulty upstreams) across 2 gateway
workers, one of them SIGKILLed and Redis restarted (appendonly yes) mid-run, then: one ledger row
per authenticated request, no duplicate, nothing left provisional after the finaliser, spend
counters equal to the ledger's sums, and no hard cap exceeded."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.db.models import Count, Sum

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from keys.spend import key_counter_name, tenant_counter_name
from simulator.server import SimulatorServer, free_port
from tests.conftest import chat_body, gateway_env
from tests.keys.conftest import worker_pids
from tests.support.celery_worker import CeleryWorker
from tests.support.gateway import GatewayServer
from tests.support.waiting import wait_until
from usage.models import UsageEvent
from usage.recording import STREAM

pytestmark = pytest.mark.slow

REQUESTS = int(os.environ.get("MESH_SOAK_REQUESTS", "5000"))
CONCURRENCY = 24
KILL_AT, REDIS_RESTART_AT = REQUESTS * 3 // 10, REQUESTS * 6 // 10
HARD_CAP, TENANT_HARD_CAP, SOFT_CAP = Decimal("0.003"), Decimal("0.004"), Decimal("0.002")
REPO_ROOT = Path(__file__).resolve().parents[2]


class DurableRedis:
    """A private redis-server with `appendonly yes`, restartable on its port with its data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="soak-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(client), timeout=10, what="the private redis-server")

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file out and exits (what a restart does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class Plan:
    index: int
    kind: str
    key: CreatedKey
    body: dict[str, Any]
    cancel_after_s: float | None = None  # the client gives up this soon (before the first byte)
    read_lines: int | None = None  # a stream the client hangs up on after this many lines


@dataclass
class Outcome:
    plan: Plan
    status: int | None = None
    request_id: str | None = None
    cancelled: bool = False
    cut: str | None = None  # a transport error (the killed worker)


@dataclass
class Keys:
    free: CreatedKey
    soft: CreatedKey
    hard: CreatedKey
    limited: CreatedKey
    globex: CreatedKey


def plan_requests(keys: Keys, rng: random.Random) -> list[Plan]:
    plans = []
    for index in range(REQUESTS):
        key = rng.choices([keys.free, keys.soft, keys.hard, keys.globex, keys.limited], [40, 20, 20, 12, 8])[
            0
        ]
        base: dict[str, Any] = {
            "session_id": f"soak-{index}", "max_tokens": 40, "timeout": 2, "metadata": {"soak": str(index)}
        }  # fmt: skip
        roll = rng.random()
        if roll < 0.35:
            plan = Plan(
                index, "plain", key, chat_body(**base, mock={"completion_tokens": rng.randint(1, 40)})
            )
        elif roll < 0.60:
            mock = {"chunks": rng.randint(2, 12), "chunk_delay_ms": 10}
            plan = Plan(index, "stream", key, chat_body(**base, stream=True, mock=mock))
        elif roll < 0.70:
            mock = {"chunks": 30, "chunk_delay_ms": 20}
            plan = Plan(index, "stream_cut", key, chat_body(**base, stream=True, mock=mock))
            plan.read_lines = rng.randint(1, 8)
        elif roll < 0.80:
            stream = rng.random() < 0.5
            plan = Plan(index, "cancel_early", key, chat_body(**base, stream=stream, mock={"delay_s": 0.6}))
            plan.cancel_after_s = rng.uniform(0.15, 0.45)
        else:
            fault = rng.choice(
                [{"status": 500}, {"status": 503}, {"status": 429}, {"status": 400}, {"malformed": True}]
            )
            stream = rng.random() < 0.4
            if stream and rng.random() < 0.5:
                fault = {"chunks": 10, "chunk_delay_ms": 10, "drop_after_chunks": 3}
            plan = Plan(index, "fault", key, chat_body(**base, stream=stream, mock=fault))
        plans.append(plan)
    return plans


async def send(client: httpx.AsyncClient, plan: Plan) -> Outcome:
    outcome = Outcome(plan)
    headers = {"Authorization": f"Bearer {plan.key.plaintext}"}
    try:
        async with asyncio.timeout(plan.cancel_after_s):
            async with client.stream("POST", "/v1/chat/completions", json=plan.body, headers=headers) as r:
                outcome.status, outcome.request_id = r.status_code, r.headers.get("X-Request-Id")
                lines = 0
                async for line in r.aiter_lines():
                    lines += bool(line)
                    if plan.read_lines is not None and lines >= plan.read_lines:
                        break  # hang up mid-stream
    except TimeoutError:
        outcome.cancelled = True
    except httpx.TransportError as error:
        outcome.cut = type(error).__name__
    return outcome


async def run_traffic(plans: list[Plan], base_url: str, on_progress: Any) -> list[Outcome]:
    limits = httpx.Limits(max_connections=CONCURRENCY + 8, max_keepalive_connections=CONCURRENCY)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async with httpx.AsyncClient(base_url=base_url, timeout=20, limits=limits) as client:

        async def one(plan: Plan) -> Outcome:
            nonlocal done
            async with semaphore:
                outcome = await send(client, plan)
            done += 1
            await on_progress(done)
            return outcome

        return await asyncio.gather(*(one(plan) for plan in plans))


class UpstreamWatcher(threading.Thread):
    """Which soak requests reached the upstream (the simulator keeps its last 200 requests)."""

    def __init__(self, simulator: SimulatorServer) -> None:
        super().__init__(daemon=True)
        self.simulator, self.reached, self.stopping = simulator, set[int](), threading.Event()

    def run(self) -> None:
        while True:
            stopping = self.stopping.is_set()
            for request in self.simulator.requests():
                metadata = (request.get("body") or {}).get("metadata") or {}
                if "soak" in metadata:
                    self.reached.add(int(metadata["soak"]))
            if stopping:
                return
            time.sleep(0.4)

    def stop(self) -> set[int]:
        self.stopping.set()
        self.join(10)
        return self.reached


def run_in_gateway_env(env: dict[str, str], code: str) -> str:
    """Run a service in a process configured like the worker (the private Redis), as beat would."""
    script = f"import django; django.setup()\n{code}"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def durable_redis() -> Iterator[DurableRedis]:
    server = DurableRedis()
    server.start()
    yield server
    server.stop()


def test_5000_requests_under_faults_leave_a_ledger_that_adds_up(
    simulator: SimulatorServer,
    durable_redis: DurableRedis,
    tenant_acme: Tenant,
    tenant_globex: Tenant,
    transactional_db: None,
) -> None:
    from routing.catalog import catalog_seed

    catalog_seed()
    simulator.reset()
    tenant_globex.spend_cap_usd, tenant_globex.hard_cap = TENANT_HARD_CAP, True
    tenant_globex.save()
    keys = Keys(
        free=api_key_create(tenant=tenant_acme, name="free", rpd=1_000_000),
        soft=api_key_create(tenant=tenant_acme, name="soft", spend_cap_usd=SOFT_CAP),
        hard=api_key_create(tenant=tenant_acme, name="hard", spend_cap_usd=HARD_CAP, hard_cap=True),
        limited=api_key_create(tenant=tenant_acme, name="limited", rpm=30),
        globex=api_key_create(tenant=tenant_globex, name="globex"),
    )
    private = {"REDIS_URL": durable_redis.url, "CELERY_BROKER_URL": durable_redis.url}
    timings = {"MESH_STREAM_MAX_S": "5", "MESH_STREAM_FINALISE_GRACE_S": "2", "MESH_SPEND_HOLD_GRACE_S": "0"}
    env = gateway_env(
        simulator, **private, **timings, MESH_STREAM_PROGRESS_INTERVAL_S="0.3", MESH_UPSTREAM_TIMEOUT_S="2"
    )
    worker_env = {**env, "MESH_USAGE_FLUSH_INTERVAL_S": "0.5", "MESH_STREAM_FINALISE_INTERVAL_S": "2"}
    plans = plan_requests(keys, random.Random(9))
    gateway = GatewayServer(env=env, workers=2)
    gateway.start()
    celery = CeleryWorker(env=worker_env, beat=True).start()
    watcher = UpstreamWatcher(simulator)
    watcher.start()
    events: dict[str, float] = {}
    started = time.monotonic()
    try:

        async def on_progress(done: int) -> None:
            if done == KILL_AT:
                os.kill(worker_pids(gateway)[0], signal.SIGKILL)  # mid-run, requests in flight on it
                events["worker killed"] = time.monotonic() - started
            elif done == REDIS_RESTART_AT:
                events["redis stopped"] = time.monotonic() - started
                await asyncio.to_thread(durable_redis.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(durable_redis.start)
                events["redis back"] = time.monotonic() - started

        outcomes = asyncio.run(run_traffic(plans, gateway.base_url, on_progress))
        traffic_s = time.monotonic() - started
        reached_upstream = watcher.stop()

        # Holds of requests the killed worker never settled expire (3 x timeout 2 s + grace 0); the
        # next reservation of each capped key gives them back: one more request each, as users do.
        time.sleep(6.5)
        for key in (keys.hard, keys.globex, keys.soft):
            httpx.post(
                f"{gateway.base_url}/v1/chat/completions",
                json=chat_body(session_id=f"sweep-{key.api_key.pk}", max_tokens=5),
                headers={"Authorization": f"Bearer {key.plaintext}"},
                timeout=20,
            )
        store = durable_redis.client()
        wait_until(lambda: store.xlen(STREAM) == 0, timeout=60, what="the flusher to drain the stream")
        soak_rows = UsageEvent.objects.filter(tenant__in=[tenant_acme, tenant_globex])
        provisional_before = soak_rows.filter(provisional=True).count()
        # Beat finalises what no stream can still replace (older than MESH_STREAM_MAX_S + grace).
        wait_until(lambda: not soak_rows.filter(provisional=True).exists(), timeout=60, what="the finaliser")
        # The ledger kept what billing could not write while Redis was down: beat's rebuild heals that.
        run_in_gateway_env(
            env, "from usage.spend_rebuild import spend_counters_rebuild; spend_counters_rebuild()"
        )
    finally:
        celery.stop()
        gateway.stop()

    # A request refused by its rate limit (429) is recorded before its body is read: it has no
    # session id, only its request id. Every other row names its request's session.
    by_session = Counter(s for s in soak_rows.values_list("session_id", flat=True) if s)
    by_request_id = {row.request_id: row for row in soak_rows}
    rows = {row.session_id: row for row in soak_rows if row.session_id}
    for outcome in outcomes:
        if outcome.request_id in by_request_id:
            rows.setdefault(f"soak-{outcome.plan.index}", by_request_id[outcome.request_id])
    responded = [o for o in outcomes if o.status is not None]
    cancelled = [o for o in outcomes if o.cancelled and o.status is None]
    cut = [o for o in outcomes if o.cut is not None and o.status is None]
    soak_sessions = {f"soak-{i}" for i in range(REQUESTS)}
    missing = [o for o in outcomes if f"soak-{o.plan.index}" not in rows]
    # Authenticated: answered (every key is valid), or seen by the upstream; the rest were cancelled
    # or cut while still queued in front of the gateway, never read.
    authenticated = {o.plan.index for o in responded} | reached_upstream
    unread = [o for o in outcomes if o.plan.index not in authenticated]
    now = datetime.now(UTC)

    def counter(name: str) -> int:
        return int(store.get(name) or 0)

    sums = dict(soak_rows.values_list("api_key_id").annotate(total=Sum("cost_usd")).order_by())
    tenant_sums = dict(soak_rows.values_list("tenant_id").annotate(total=Sum("cost_usd")).order_by())
    key_mismatch = {
        key.api_key.name: (counter(key_counter_name(key.api_key.tenant_id, key.api_key.pk, "monthly", now)),
                           int(sums.get(key.api_key.pk, 0) * 10**9))
        for key in (keys.free, keys.soft, keys.hard, keys.limited, keys.globex)
    }  # fmt: skip
    tenant_mismatch = {
        tenant.name: (counter(tenant_counter_name(tenant.pk, "monthly", now)),
                      int(tenant_sums.get(tenant.pk, 0) * 10**9))
        for tenant in (tenant_acme, tenant_globex)
    }  # fmt: skip
    statuses = Counter(o.status for o in responded)
    kinds = Counter(o.plan.kind for o in outcomes)
    with_row = {o.plan.index for o in outcomes if f"soak-{o.plan.index}" in rows}
    lines = [
        f"soak: {REQUESTS} requests in {traffic_s:.1f}s ({REQUESTS / traffic_s:.0f}/s), kinds {dict(kinds)}",
        f"events at { ({k: round(v, 1) for k, v in events.items()}) }",
        f"responded {len(responded)} {dict(sorted(statuses.items()))}; cancelled before the first byte "
        f"{len(cancelled)}; cut by the killed worker {len(cut)} {dict(Counter(o.cut for o in cut))}",
        f"authenticated {len(authenticated)} (answered, or reached the upstream); ledger rows "
        f"{soak_rows.count()} (soak {len(soak_sessions & rows.keys())} + 3 sweeps); duplicates "
        f"{sum(n - 1 for n in by_session.values())}; authenticated without a row "
        f"{len(authenticated - with_row)}",
        f"without a row: {len(missing)}, all cancelled or cut before the upstream call: "
        f"{ {o.plan.index for o in missing} <= {o.plan.index for o in unread} }",
        f"provisional before the finaliser {provisional_before}, after "
        f"{soak_rows.filter(provisional=True).count()}; finalised stream_lost "
        f"{soak_rows.filter(error_code='stream_lost').count()}, worker_lost "
        f"{soak_rows.filter(error_code='worker_lost').count()}",
        f"spend counters vs ledger (nano-USD): keys {key_mismatch}; tenants {tenant_mismatch}",
        f"hard caps: key ${sums.get(keys.hard.api_key.pk, 0)} of ${HARD_CAP}, tenant globex "
        f"${tenant_sums.get(tenant_globex.pk, 0)} of ${TENANT_HARD_CAP}",
    ]
    print("\n" + "\n  ".join(lines))

    assert max(by_session.values()) == 1  # no request counted twice
    assert soak_rows.values("request_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    for outcome in responded:  # every answered request has its row, under its request id
        row = rows[f"soak-{outcome.plan.index}"]
        assert row.request_id == outcome.request_id
        if not outcome.plan.body.get("stream"):
            assert row.http_status == outcome.status
    assert {o.plan.index for o in missing} <= {o.plan.index for o in unread}  # one row per authenticated
    assert authenticated <= with_row
    assert not soak_rows.filter(provisional=True).exists()
    assert not soak_rows.filter(error_code="stream_unfinished").exists()
    assert all(redis_total == ledger_total for redis_total, ledger_total in key_mismatch.values())
    assert all(redis_total == ledger_total for redis_total, ledger_total in tenant_mismatch.values())
    assert sums.get(keys.hard.api_key.pk, 0) <= HARD_CAP
    assert tenant_sums.get(tenant_globex.pk, 0) <= TENANT_HARD_CAP
    assert statuses[402] > 0 and statuses[429] > 0  # the caps and the limits did refuse
