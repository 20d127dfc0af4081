"""A long stream keeps its hard-cap hold while it is open: the hold's deadline (3 × the request's
`timeout` + grace) bounds the gap between reads, not a stream's length, so the relay renews it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx
import redis

from keys.models import Tenant
from keys.services import api_key_create
from keys.spend import holds_names
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.keys.conftest import key_counter, nano, wait_for_ledger
from tests.support.gateway import GatewayServer
from tests.support.waiting import wait_until


def test_a_stream_longer_than_its_hold_deadline_keeps_the_cap_a_ceiling(
    gateway: GatewayServer, simulator: SimulatorServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    # The repro, scaled down: hold deadline 3 × timeout 1 s + grace 0 = 3 s; the stream lasts ~6 s.
    env = gateway_env(simulator, MESH_SPEND_HOLD_GRACE_S="0", MESH_STREAM_PROGRESS_INTERVAL_S="0.5")
    server = GatewayServer(env=env, workers=2)
    server.start()
    try:
        cap = Decimal("0.02")
        key = api_key_create(tenant=tenant_acme, spend_cap_usd=cap, hard_cap=True)
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        url = f"{server.base_url}/v1/chat/completions"
        usage = {"prompt_tokens": 20, "completion_tokens": 1200}  # $0.01205 on gpt-4o: one fits, two do not
        stream_a = chat_body(
            model="openai/gpt-4o", max_tokens=1200, timeout=1, stream=True,
            mock={"chunks": 60, "chunk_delay_ms": 100, **usage},
        )  # fmt: skip
        request_b = chat_body(model="openai/gpt-4o", max_tokens=1200, timeout=1, mock=usage)
        a_status: list[int] = []

        def run_a() -> None:
            with httpx.Client(timeout=30) as client:
                response = client.post(url, json=stream_a, headers=headers)
                a_status.append(response.status_code)
                assert response.text.rstrip().endswith("data: [DONE]")

        streaming = threading.Thread(target=run_a)
        streaming.start()
        holds = holds_names(tenant_acme.pk)[0]
        wait_until(lambda: test_redis.hlen(holds) == 1, what="stream A's hold")
        started = time.monotonic()
        assert httpx.post(url, json=request_b, headers=headers).status_code == 402  # A's hold leaves no room
        time.sleep(max(0.0, started + 4.0 - time.monotonic()))  # past A's original hold deadline (3 s)
        assert streaming.is_alive()  # A still streams…
        late = httpx.post(url, json=request_b, headers=headers)
        assert late.status_code == 402, late.text  # …and still holds its worst case
        streaming.join(30)
        assert a_status == [200]
    finally:
        server.stop()

    spent = wait_for_ledger(3, api_key_id=key.api_key.pk)
    print(
        f"\nhard cap ${cap}, a {time.monotonic() - started:.1f}s stream and two late requests: spend ${spent}"
    )
    assert spent <= cap
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)
    assert test_redis.hlen(holds_names(tenant_acme.pk)[0]) == 0
