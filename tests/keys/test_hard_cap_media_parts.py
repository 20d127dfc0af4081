"""A hard cap is a ceiling whatever the request looks like: media parts cost more tokens than their
bytes, so the worst case prices each at the catalog's bound for the model (editable in admin)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import redis

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from routing.catalog import catalog_changed
from routing.models import CatalogModel
from tests.conftest import chat_body
from tests.keys.conftest import key_counter, nano, wait_for_ledger
from tests.support.gateway import GatewayServer

IMAGES = 20
# What gpt-4o bills for one high-detail image at its largest (8 tiles): the upstream's real count.
IMAGE_TOKENS = 85 + 8 * 170
GPT_4O_INPUT, GPT_4O_OUTPUT = Decimal("2.50") / 1_000_000, Decimal("10.00") / 1_000_000


def image_request() -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "Compare these pictures."}]
    parts += [
        {"type": "image_url", "image_url": {"url": f"https://img.example/{n}.png", "detail": "high"}}
        for n in range(IMAGES)
    ]
    prompt = IMAGES * IMAGE_TOKENS + 20
    return chat_body(
        model="openai/gpt-4o",
        max_tokens=10,
        messages=[{"role": "user", "content": parts}],
        mock={"prompt_tokens": prompt, "completion_tokens": 10, "delay_s": 0.3},
    )


def concurrent(base_url: str, key: CreatedKey, bodies: list[dict[str, Any]]) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            headers = {"Authorization": f"Bearer {key.plaintext}"}
            responses = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=body, headers=headers) for body in bodies)
            )
            return [r.status_code for r in responses]

    return asyncio.run(run())


def test_image_parts_count_at_the_models_image_bound_under_a_hard_cap(
    gateway: GatewayServer, tenant_acme: Tenant, test_redis: redis.Redis
) -> None:
    real_cost = (IMAGES * IMAGE_TOKENS + 20) * GPT_4O_INPUT + 10 * GPT_4O_OUTPUT  # ~$0.0724 each
    cap = Decimal("0.20")  # fits two such requests, not three
    key = api_key_create(tenant=tenant_acme, name="vision", spend_cap_usd=cap, hard_cap=True)
    statuses = concurrent(gateway.base_url, key, [image_request() for _ in range(10)])

    spent = wait_for_ledger(10, api_key_id=key.api_key.pk)
    print(f"\n10 x {IMAGES} images on a ${cap} hard cap: {statuses.count(200)} admitted, spend ${spent}")
    assert spent <= cap
    assert statuses.count(200) == 2 and statuses.count(402) == 8
    assert spent == 2 * real_cost
    assert key_counter(test_redis, tenant_acme, key.api_key.pk) == nano(spent)


def test_the_image_bound_is_a_catalog_field_the_operator_can_change(
    gateway: GatewayServer, tenant_acme: Tenant
) -> None:
    model = CatalogModel.objects.get(model_id="openai/gpt-4o")
    assert model.image_part_max_tokens == IMAGE_TOKENS  # seeded from the provider's rules
    assert CatalogModel.objects.get(model_id="anthropic/claude-sonnet-4-5").image_part_max_tokens == 1600
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.05"), hard_cap=True)
    headers = {"Authorization": f"Bearer {key.plaintext}"}
    body = image_request()
    assert (
        httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body, headers=headers).status_code == 402
    )

    model.image_part_max_tokens = 100  # the operator says this deployment only sends small images
    model.save()
    catalog_changed()
    body["mock"]["prompt_tokens"] = IMAGES * 100
    assert (
        httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body, headers=headers).status_code == 200
    )
