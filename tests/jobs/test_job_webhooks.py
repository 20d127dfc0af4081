"""Webhooks: signed with the tenant's secret, retried with backoff on the receiver's 500s, the
outcome on the job; URLs and resolved addresses checked."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
import pytest

from jobs.models import WebhookSecret
from jobs.webhooks import WebhookRefused, webhook_target_resolve, webhook_url_validate
from keys.models import Tenant
from meshplatform.errors import BadRequest
from tests.conftest import chat_body
from tests.jobs.conftest import wait_for_job
from tests.support.celery_worker import CeleryWorker
from tests.support.waiting import wait_until


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (the README's recipe)."""
    parts = dict(part.split("=", 1) for part in headers["Mesh-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_webhook_is_signed_retried_on_500s_and_its_outcome_is_on_the_job(
    acme_http: httpx.Client, tenant_acme: Tenant, celery_worker: CeleryWorker, webhook_receiver: Any
) -> None:
    secret = WebhookSecret.objects.create(tenant=tenant_acme).secret
    receiver = webhook_receiver([500, 500, 200])
    job = acme_http.post(
        "/chat/completions", json=chat_body(async_mode=True, webhook_url=receiver.url)
    ).json()
    assert job["webhook"] == {
        "url": receiver.url,
        "status": "pending",
        "attempts": 0,
        "last_status_code": None,
        "last_error": None,
        "delivered_at": None,
    }
    wait_for_job(acme_http, job["id"])
    delivered = wait_until(
        lambda: (j := acme_http.get(f"/jobs/{job['id']}").json())["webhook"]["status"] == "delivered" and j,
        timeout=20,
        what="the webhook delivered",
    )
    assert delivered["webhook"]["attempts"] == 3
    assert delivered["webhook"]["last_status_code"] == 200
    assert len(receiver.deliveries) == 3
    for delivery in receiver.deliveries:
        assert delivery["path"] == "/hooks/mesh"
        assert verify(secret, delivery["headers"], delivery["body"])
        assert not verify("whsec_wrong", delivery["headers"], delivery["body"])
    payload = orjson.loads(receiver.deliveries[-1]["body"])
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    assert payload["data"]["result"]["object"] == "chat.completion"
    assert receiver.deliveries[-1]["headers"]["Mesh-Webhook-Id"] == f"{job['id']}:succeeded"


def test_webhook_gives_up_after_the_configured_attempts(
    acme_http: httpx.Client, celery_worker: CeleryWorker, webhook_receiver: Any
) -> None:
    receiver = webhook_receiver([503] * 10)
    job = acme_http.post(
        "/chat/completions", json=chat_body(async_mode=True, webhook_url=receiver.url)
    ).json()
    failed = wait_until(
        lambda: (j := acme_http.get(f"/jobs/{job['id']}").json())["webhook"]["status"] == "failed" and j,
        timeout=30,
        what="the webhook to give up",
    )
    assert failed["status"] == "succeeded"  # the job itself is fine
    assert failed["webhook"]["attempts"] == 4  # MESH_WEBHOOK_MAX_ATTEMPTS in the worker's env
    assert failed["webhook"]["last_status_code"] == 503
    assert len(receiver.deliveries) == 4


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://172.16.0.1/x",
        "https://192.168.1.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://0.0.0.0/x",
        "http://example.com/x",
        "https://user:pw@example.com/x",
    ],
)
def test_production_refuses_non_public_or_plain_http_targets(url: str, settings: Any) -> None:
    settings.MESH_WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(BadRequest):
        webhook_url_validate(url)


def test_the_resolved_address_is_checked_not_only_the_name(settings: Any) -> None:
    """`localhost` is a name, not an address: in production its resolution (loopback) is refused,
    and the delivery connects to the address that was checked."""
    settings.MESH_WEBHOOK_ALLOW_LOOPBACK = False
    webhook_url_validate("https://localhost/hook")  # a name passes the shape check...
    with pytest.raises(WebhookRefused):
        webhook_target_resolve("https://localhost/hook")  # ...its addresses do not
    settings.MESH_WEBHOOK_ALLOW_LOOPBACK = True
    target = webhook_target_resolve("http://localhost:8123/hook?x=1")
    assert target.address.is_loopback
    assert target.pinned_url() in ("http://127.0.0.1:8123/hook?x=1", "http://[::1]:8123/hook?x=1")
    assert target.host == "localhost"


def test_dns_rebinding_cannot_redirect_a_checked_delivery(settings: Any, monkeypatch: Any) -> None:
    """The name resolves to a public address at check time and to a private one afterwards: the
    delivery still connects to the checked public address (never resolves again)."""
    import socket

    settings.MESH_WEBHOOK_ALLOW_LOOPBACK = False
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]])

    def rebinding(*args: Any, **kwargs: Any) -> Any:
        try:
            return next(answers)
        except StopIteration:  # any later lookup would answer a private address
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    target = webhook_target_resolve("https://hooks.example.com/in")
    assert target.pinned_url() == "https://93.184.215.14:443/in"
    assert target.host == "hooks.example.com"
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(WebhookRefused):  # and a name answering a private address is refused
        webhook_target_resolve("https://hooks.example.com/in")
