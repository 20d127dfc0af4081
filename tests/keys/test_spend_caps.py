"""Spend caps under concurrency: soft caps stop new requests once reached (in-flight ones finish and
are billed), hard caps never end above the cap, holds are released however a request ends, and
streamed requests are billed from the upstream's usage chunk."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import orjson
import redis

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from keys.spend import holds_names
from routing.schema import MESH_ONLY_FIELDS
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.keys.conftest import (
    MINI_INPUT,
    MINI_OUTPUT,
    key_counter,
    mini_cost,
    nano,
    serving_pid,
    tenant_counter,
    wait_for_ledger,
    wait_until,
    worker_pids,
)
from tests.support.gateway import GatewayServer

PROMPT, COMPLETION = 100, 1000
COST = mini_cost(PROMPT, COMPLETION)  # $0.000615 a request
CAP = 20 * COST


def priced_body(**overrides: Any) -> dict[str, Any]:
    """A request whose upstream usage (so cost) is fixed by the simulator's mock."""
    mock = {"prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "delay_s": 0.2}
    return chat_body(max_tokens=COMPLETION, mock={**mock, **overrides.pop("mock", {})}, **overrides)


def worst_case(body: dict[str, Any]) -> Decimal:
    """What the gateway holds for `body` on gpt-4o-mini: body bytes as prompt tokens + max_tokens."""
    forwarded = {k: v for k, v in body.items() if k not in MESH_ONLY_FIELDS}
    return Decimal(len(orjson.dumps(forwarded)) * MINI_INPUT + body["max_tokens"] * MINI_OUTPUT)


@dataclass
class Outcome:
    sent: float
    received: float
    status: int


def fire(base_url: str, keys: list[CreatedKey], count: int, *, stagger_s: float) -> list[Outcome]:
    """`count` concurrent requests (round-robin over `keys`), the i-th sent after i × stagger_s."""

    async def run() -> list[Outcome]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

            async def one(index: int) -> Outcome:
                await asyncio.sleep(index * stagger_s)
                key = keys[index % len(keys)]
                sent = time.monotonic()
                response = await client.post(
                    "/v1/chat/completions",
                    json=priced_body(),
                    headers={"Authorization": f"Bearer {key.plaintext}"},
                )
                return Outcome(sent, time.monotonic(), response.status_code)

            return await asyncio.gather(*(one(i) for i in range(count)))

    return asyncio.run(run())


def post(base_url: str, key: CreatedKey, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key.plaintext}"},
        timeout=30,
    )


def test_soft_cap_reached_midway_through_100_concurrent_requests(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    warm = api_key_create(tenant=tenant_acme, name="warm-up")  # first requests pay for connections
    fire(gateway.base_url, [warm], 8, stagger_s=0)
    key = api_key_create(tenant=tenant_acme, name="soft", spend_cap_usd=CAP)
    # Spread over 4 s (responses take ~0.3 s), so the cap is crossed while requests keep arriving.
    outcomes = fire(gateway.base_url, [key], 100, stagger_s=0.04)
    admitted = [o for o in outcomes if o.status == 200]
    assert {o.status for o in outcomes} == {200, 402}
    assert len(admitted) >= 20  # the cap was reached…
    assert len(admitted) < 100  # …and stopped the requests that came after

    spent = wait_for_ledger(100, api_key_id=key.api_key.pk)
    assert spent == len(admitted) * COST  # every admitted request billed, each exactly once
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)

    crossing = sorted(o.received for o in admitted)[math.ceil(CAP / COST) - 1]
    in_flight = [o for o in admitted if o.received >= crossing]
    overshoot = spent - CAP
    print(
        f"\nsoft cap ${CAP}: {len(admitted)} admitted, spend ${spent}, overshoot ${overshoot} "
        f"({overshoot / COST:g} requests); in flight at the crossing: {len(in_flight)} "
        f"(${len(in_flight) * COST})"
    )
    assert overshoot <= len(in_flight) * COST
    assert all(o.status == 402 for o in outcomes if o.sent > crossing)  # nothing admitted after the cap
    later = [post(gateway.base_url, key, priced_body(mock={"delay_s": 0})) for _ in range(3)]
    assert {r.status_code for r in later} == {402}
    error = later[0].json()["error"]
    assert error["code"] == "spend_limit_exceeded" and "key's spend cap" in error["message"]


def test_hard_cap_is_never_exceeded_by_100_concurrent_requests(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, name="hard", spend_cap_usd=CAP, hard_cap=True)
    outcomes = fire(gateway.base_url, [key], 100, stagger_s=0.002)
    admitted = [o for o in outcomes if o.status == 200]
    assert {o.status for o in outcomes} == {200, 402}
    assert len(admitted) >= int(CAP / worst_case(priced_body()))  # holds are worst case, not looser

    spent = wait_for_ledger(100, api_key_id=key.api_key.pk)
    print(f"\nhard cap ${CAP}: {len(admitted)} admitted, final spend ${spent} (cap − spend ${CAP - spent})")
    assert spent <= CAP
    assert spent == len(admitted) * COST
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)  # holds all settled
    assert test_redis.hlen(holds_names(tenant_acme.pk)[0]) == 0
    later = [post(gateway.base_url, key, priced_body(mock={"delay_s": 0})) for _ in range(3)]
    assert {r.status_code for r in later} == {402}
    assert wait_for_ledger(103, api_key_id=key.api_key.pk) <= CAP


def test_a_tenant_hard_cap_holds_across_its_keys_and_spares_other_tenants(
    gateway: GatewayServer, tenant_acme: Tenant, globex_key: CreatedKey, test_redis: redis.Redis
) -> None:
    tenant_acme.spend_cap_usd, tenant_acme.hard_cap = CAP, True
    tenant_acme.save()
    keys = [api_key_create(tenant=tenant_acme, name=f"acme {n}") for n in range(2)]
    outcomes = fire(gateway.base_url, keys, 60, stagger_s=0.002)
    spent = wait_for_ledger(60, tenant_id=tenant_acme.pk)
    assert 0 < spent <= CAP
    assert tenant_counter(test_redis, tenant_acme) == nano(spent)
    assert spent == sum(o.status == 200 for o in outcomes) * COST
    assert post(gateway.base_url, globex_key, priced_body(mock={"delay_s": 0})).status_code == 200


def test_hard_cap_refuses_a_request_whose_worst_case_does_not_fit(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.001"), hard_cap=True)
    unbounded = post(gateway.base_url, key, chat_body())  # no max_tokens: the model's 16,384 count
    assert unbounded.status_code == 402
    assert "could cost up to" in unbounded.json()["error"]["message"]
    too_long = post(gateway.base_url, key, chat_body(max_tokens=2000))  # 2000 × $0.6/M > $0.001
    assert too_long.status_code == 402
    assert post(gateway.base_url, key, chat_body(max_tokens=100)).status_code == 200
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) < nano(Decimal("0.001"))


def test_holds_are_released_when_the_upstream_fails_or_the_client_leaves(
    gateway: GatewayServer, simulator: SimulatorServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("1"), hard_cap=True)
    holds = holds_names(tenant_acme.pk)[0]
    failed = post(gateway.base_url, key, chat_body(max_tokens=500, mock={"status": 400}))
    assert failed.status_code >= 400

    headers = {"Authorization": f"Bearer {key.plaintext}"}
    slow = chat_body(max_tokens=500, mock={"delay_s": 1.5})
    with httpx.Client(base_url=gateway.base_url, timeout=0.3) as client, suppress(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=slow, headers=headers)  # leaves before the answer
    stream_body = chat_body(max_tokens=500, stream=True, mock={"chunks": 40, "chunk_delay_ms": 50})
    with (
        httpx.Client(base_url=gateway.base_url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=stream_body, headers=headers) as response,
    ):
        assert next(response.iter_lines()).startswith("data: ")  # one chunk, then hang up mid-stream
    wait_until(lambda: test_redis.hlen(holds) == 0 or None, what="every hold released")
    spent = wait_for_ledger(3, api_key_id=key.api_key.pk)
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)  # real cost, no hold left
    assert spent < mini_cost(0, 500)  # far below even one worst case


def test_streams_are_billed_from_the_usage_chunk_the_client_did_not_ask_for(
    gateway: GatewayServer,
    simulator: SimulatorServer,
    acme_key: CreatedKey,
    tenant_acme: Tenant,
    test_redis: redis.Redis,
) -> None:
    body = chat_body(stream=True, mock={"chunks": 5, "prompt_tokens": 321, "completion_tokens": 54})
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        response = client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {acme_key.plaintext}"}
        )
    assert response.status_code == 200
    chunks = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert chunks and not any(chunk.get("usage") for chunk in chunks)  # not forwarded: not asked for
    upstream = simulator.requests()[-1]["body"]
    assert upstream["stream_options"]["include_usage"] is True  # but always requested upstream
    spent = wait_for_ledger(1, api_key_id=acme_key.api_key.pk)
    assert spent == mini_cost(321, 54)
    assert key_counter(test_redis, tenant_acme, acme_key.api_key.pk) == nano(spent)


def test_a_hold_left_by_a_killed_worker_is_given_back_after_its_deadline(
    gateway: GatewayServer, simulator: SimulatorServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    """No settlement ever comes for a request whose worker died: its hold must not lock the key out."""
    server = GatewayServer(env=gateway_env(simulator, MESH_SPEND_HOLD_GRACE_S="0"), workers=2)
    server.start()
    try:
        key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.001"), hard_cap=True)  # one fits
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        doomed = httpx.Client(base_url=server.base_url, timeout=10)
        pid = serving_pid(doomed, worker_pids(server))
        assert pid is not None
        body = priced_body(timeout=1, mock={"delay_s": 5})  # hold deadline: 3 × 1 s + grace 0

        def send_and_lose_the_worker() -> None:
            with suppress(httpx.HTTPError):
                doomed.post("/v1/chat/completions", json=body, headers=headers)

        thread = threading.Thread(target=send_and_lose_the_worker)
        thread.start()
        wait_until(lambda: test_redis.hlen(holds_names(tenant_acme.pk)[0]) == 1 or None, what="the hold")
        held_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        thread.join(10)

        assert post(server.base_url, key, priced_body(mock={"delay_s": 0})).status_code == 402  # still held
        time.sleep(max(0.0, held_at + 3.2 - time.monotonic()))
        assert post(server.base_url, key, priced_body(mock={"delay_s": 0})).status_code == 200
        assert test_redis.hlen(holds_names(tenant_acme.pk)[0]) == 0
        assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(COST)
    finally:
        server.stop()
