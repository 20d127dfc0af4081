"""Soft caps count what requests in flight are expected to cost: 100 concurrent requests on a soft cap
overshoot it by no more than the estimate's error (≤ 10 %), and every admitted request finishes and
is billed."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from keys.models import Tenant
from keys.services import api_key_create
from keys.spend import in_flight_name, key_counter_name
from tests.keys.conftest import key_counter, nano, wait_for_ledger
from tests.keys.test_spend_caps import CAP, COST, fire, post, priced_body
from tests.support.gateway import GatewayServer


def test_100_concurrent_requests_overshoot_a_soft_cap_by_at_most_ten_percent(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    warm = api_key_create(tenant=tenant_acme, name="warm-up")
    fire(gateway.base_url, [warm], 8, stagger_s=0)
    key = api_key_create(tenant=tenant_acme, name="soft", spend_cap_usd=CAP)
    outcomes = fire(gateway.base_url, [key], 100, stagger_s=0.001)  # all in flight before any is billed
    admitted = [o for o in outcomes if o.status == 200]

    spent = wait_for_ledger(100, api_key_id=key.api_key.pk)
    share = f"{spent / CAP:.1%}"
    print(f"\n100 concurrent on a ${CAP} soft cap: {len(admitted)} admitted, spend ${spent} ({share})")
    assert {o.status for o in outcomes} == {200, 402}
    assert spent == len(admitted) * COST  # every admitted request finished and was billed, once
    assert CAP <= spent <= CAP * 11 / 10  # the cap was reached, and overshot by at most 10 %
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)
    counter = key_counter_name(tenant_acme.pk, key.api_key.pk, "monthly", datetime.now(UTC))
    assert int(test_redis.get(in_flight_name(counter)) or 0) == 0  # nothing left counted in flight
    assert post(gateway.base_url, key, priced_body(mock={"delay_s": 0})).status_code == 402
