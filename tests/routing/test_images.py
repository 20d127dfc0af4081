"""POST /v1/images/generations through the official openai SDK and raw HTTP: b64_json and url
answers, per-image billing by size and quality from the catalog, caps, limits and hostile input."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from routing.models import CatalogModel
from simulator.server import SimulatorServer
from tests.usage.conftest import ledger_events
from usage.models import UsageEvent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_calls(simulator: SimulatorServer) -> list[dict[str, Any]]:
    return [r for r in simulator.requests() if r["path"].endswith("/images/generations")]


def catalog_price(model_id: str, quality: str, size: str) -> Decimal:
    """The catalog row's price, read here from the table (not by the gateway's code)."""
    return Decimal(CatalogModel.objects.get(model_id=model_id).image_prices[quality][size])


def test_b64_json_images_are_valid_pngs_billed_per_image(acme_openai: Any, acme_key: CreatedKey) -> None:
    raw = acme_openai.images.with_raw_response.generate(
        model="openai/dall-e-2", prompt="a red fox", n=2, size="512x512", response_format="b64_json",
        extra_body={"session_id": "art-1"},
    )  # fmt: skip
    result = raw.parse()
    assert result.created and len(result.data) == 2
    pictures = [base64.b64decode(item.b64_json) for item in result.data]
    assert all(p.startswith(PNG_SIGNATURE) and p.endswith(b"IEND\xaeB`\x82") for p in pictures)
    assert pictures[0] != pictures[1]

    request_id = raw.headers["X-Request-Id"]
    event = ledger_events([request_id])[request_id]
    assert (event.endpoint, event.images, event.session_id) == ("images.generations", 2, "art-1")
    assert event.model_served == "openai/dall-e-2" and event.http_status == 200
    assert event.cost_usd == 2 * catalog_price("openai/dall-e-2", "standard", "512x512")
    assert UsageEvent.objects.filter(api_key_id=acme_key.api_key.pk).count() == 1


def test_url_images_are_the_upstreams_urls(acme_openai: Any, simulator: SimulatorServer) -> None:
    result = acme_openai.images.generate(
        model="openai/dall-e-3", prompt="a lighthouse", response_format="url"
    )
    url = result.data[0].url
    assert url is not None and url.startswith(simulator.base_url) and result.data[0].revised_prompt
    fetched = httpx.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content.startswith(PNG_SIGNATURE)
    sent = image_calls(simulator)[-1]["body"]
    assert sent == {"model": "dall-e-3", "prompt": "a lighthouse", "response_format": "url"}


def test_quality_and_size_choose_the_price(acme_http: httpx.Client) -> None:
    hd = acme_http.post(
        "/images/generations",
        json={"model": "openai/dall-e-3", "prompt": "p", "quality": "hd", "size": "1792x1024"},
    )
    default = acme_http.post("/images/generations", json={"model": "openai/dall-e-3", "prompt": "p"})
    auto = acme_http.post(
        "/images/generations",
        json={"model": "openai/gpt-image-1", "prompt": "p", "quality": "auto", "size": "auto"},
    )
    assert (hd.status_code, default.status_code, auto.status_code) == (200, 200, 200)
    assert auto.json()["data"][0]["b64_json"]
    ids = [r.headers["X-Request-Id"] for r in (hd, default, auto)]
    events = ledger_events(ids)
    assert events[ids[0]].cost_usd == catalog_price("openai/dall-e-3", "hd", "1792x1024") == Decimal("0.12")
    assert events[ids[1]].cost_usd == catalog_price("openai/dall-e-3", "standard", "1024x1024")
    # `auto` is held at the most the model can cost, and billed at what gpt-image-1 says it made
    # (its tokens are recorded, not billed).
    assert (auto.json()["quality"], auto.json()["size"]) == ("medium", "1024x1024")
    assert events[ids[2]].cost_usd == catalog_price("openai/gpt-image-1", "medium", "1024x1024")
    assert events[ids[2]].completion_tokens == 1056


def test_auto_is_held_at_the_dearest_image(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    # gpt-image-1 at its dearest (high, 1536x1024) costs $0.25: a $0.20 hard cap refuses `auto`.
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.20"), hard_cap=True)
    body = {"model": "openai/gpt-image-1", "prompt": "p", "quality": "auto", "size": "auto"}
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        refused = client.post("/images/generations", json=body)
        fits = client.post("/images/generations", json={**body, "quality": "low"})
    assert (refused.status_code, fits.status_code) == (402, 200)
    assert len(image_calls(simulator)) == 1


HOSTILE_BODIES = [
    ({"model": "openai/dall-e-2", "prompt": "p", "size": "999x999"}, "size"),
    ({"model": "openai/dall-e-3", "prompt": "p", "size": "256x256"}, "size"),
    ({"model": "openai/dall-e-3", "prompt": "p", "quality": "ultra"}, "quality"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": 0}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": 11}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": 10**12}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": "2"}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": 1.5}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "p", "n": True}, "n"),
    ({"model": "openai/dall-e-2", "prompt": "nul\u0000"}, "prompt"),
    ({"model": "openai/dall-e-2", "prompt": ""}, "prompt"),
    ({"model": "openai/dall-e-2", "prompt": "x" * 32_001}, "prompt"),
    ({"model": "openai/dall-e-2", "prompt": ["p"]}, "prompt"),
    ({"model": "openai/dall-e-2"}, "prompt"),
    ({"model": "openai/dall-e-2", "prompt": "p", "size": 1024}, "size"),
    ({"model": "openai/dall-e-2", "prompt": "p", "response_format": "jpeg"}, "response_format"),
    ({"prompt": "p"}, "model"),
]


@pytest.mark.parametrize(
    ("body", "param"), HOSTILE_BODIES, ids=[f"{i}-{p}" for i, (_, p) in enumerate(HOSTILE_BODIES)]
)
def test_hostile_input_is_a_422_naming_the_field_and_never_reaches_the_upstream(
    acme_http: httpx.Client, simulator: SimulatorServer, body: dict[str, Any], param: str
) -> None:
    response = acme_http.post("/images/generations", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == param
    assert image_calls(simulator) == []
    request_id = response.headers["X-Request-Id"]
    assert ledger_events([request_id])[request_id].endpoint == "images.generations"


def test_model_kinds_do_not_cross(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    chat = acme_http.post("/images/generations", json={"model": "openai/gpt-4o", "prompt": "p"})
    embedding = acme_http.post(
        "/images/generations", json={"model": "openai/text-embedding-3-small", "prompt": "p"}
    )
    image_for_chat = acme_http.post(
        "/chat/completions",
        json={"model": "openai/dall-e-3", "messages": [{"role": "user", "content": "hi"}]},
    )
    for response in (chat, embedding, image_for_chat):
        assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_supported"
    assert simulator.requests() == []


def test_a_hard_cap_holds_n_images_before_the_upstream_call(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer
) -> None:
    key = api_key_create(tenant=tenant_acme, spend_cap_usd=Decimal("0.05"), hard_cap=True)
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        three = client.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "n": 3})
        two = client.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "n": 2})
        next_two = client.post(
            "/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "n": 2}
        )
    # $0.02 an image: three ($0.06) never fit; two ($0.04) do once, not twice.
    assert (three.status_code, two.status_code, next_two.status_code) == (402, 200, 402)
    assert len(image_calls(simulator)) == 1
    ids = [r.headers["X-Request-Id"] for r in (three, two, next_two)]
    events = ledger_events(ids)
    assert [events[i].cost_usd for i in ids] == [Decimal(0), Decimal("0.04"), Decimal(0)]


def test_rate_limits_apply_and_upstream_failures_are_recorded(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer, acme_openai: Any
) -> None:
    simulator.script(model="dall-e-2", times=1, status=503)
    with pytest.raises(openai.InternalServerError):
        acme_openai.images.generate(model="openai/dall-e-2", prompt="p")
    key = api_key_create(tenant=tenant_acme, rpm=1)
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30
    ) as client:
        first = client.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p"})
        second = client.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p"})
    assert (first.status_code, second.status_code) == (200, 429)
    events = UsageEvent.objects.filter(endpoint="images.generations")
    ledger_events([first.headers["X-Request-Id"], second.headers["X-Request-Id"]])
    assert sorted(e.http_status for e in events) == [200, 429, 502]
    assert sum(e.images for e in events) == 1


def test_two_tenants_are_billed_and_report_apart(
    acme_http: httpx.Client, api_url: str, globex_key: CreatedKey
) -> None:
    acme = acme_http.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p", "n": 3})
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}, timeout=30
    ) as globex_http:
        globex = globex_http.post("/images/generations", json={"model": "openai/dall-e-2", "prompt": "p"})
        ledger_events([acme.headers["X-Request-Id"], globex.headers["X-Request-Id"]])
        globex_usage = globex_http.get("/usage").json()
    acme_usage = acme_http.get("/usage").json()
    assert Decimal(acme_usage["totals"]["cost_usd"]) == Decimal("0.06")
    assert Decimal(globex_usage["totals"]["cost_usd"]) == Decimal("0.02")
    assert acme_usage["totals"]["requests"] == globex_usage["totals"]["requests"] == 1
