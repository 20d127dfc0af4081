"""An event the database cannot store as is (a NUL character in a text value) is never dropped: it
lands escaped and flagged, finance sees it, and the operator sees the count; dead letters stay for bugs.

Validation rejects such input at the door (422), so the only way such an event still reaches the
ledger is through the write-ahead stream itself: that is the seam this test injects at.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import httpx
import redis
from django.conf import settings

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.usage.conftest import ledger_events
from usage.codec import event_encode
from usage.flushing import usage_stream_flush
from usage.recording import DEAD_LETTERS, PAYLOAD_FIELD, STREAM
from usage.rollups import usage_rollups_refresh
from usage.types import TokenUsage, UsageEventData


def test_an_event_with_nul_characters_lands_escaped_flagged_and_counted(
    gateway: GatewayServer, acme_key: CreatedKey, acme_http: httpx.Client, ledger_flusher: LedgerFlusher
) -> None:
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    hidden = UsageEventData(
        request_id="req_nul_session", tenant_id=acme_key.api_key.tenant_id, key_id=acme_key.api_key.pk,
        model_requested="openai/\x00", model_served="openai/gpt-4o-mini", provider="openai",
        session_id="hide\x00me", started_at=time.time(), cost_usd=Decimal("0.25"),
        tokens=TokenUsage(prompt_tokens=1000, completion_tokens=100),
        attempts=[{"model": "openai/\x00", "provider": "openai", "status": 200}],
    )  # fmt: skip
    with ledger_flusher.paused():
        test_redis.xadd(STREAM, {PAYLOAD_FIELD: event_encode(hidden)})
        result = usage_stream_flush(consumer="test-flusher")

    assert (result.read, result.stored, result.dead, result.sanitized) == (1, 1, 0, 1)
    assert test_redis.xlen(DEAD_LETTERS) == 0  # dead letters are for bugs, not for money
    [row] = ledger_events(["req_nul_session"]).values()
    assert row.sanitized and row.cost_usd == Decimal("0.25")
    assert row.session_id == "hide\\u0000me" and row.model_requested == "openai/\\u0000"
    assert row.attempts[0]["model"] == "openai/\\u0000"

    # Finance sees the spend (rollups feed /v1/usage), and the operator sees the count.
    usage_rollups_refresh()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    report = acme_http.get("/usage", params={"from": today, "to": today, "group_by": "session_id"}).json()
    assert Decimal(str(report["totals"]["cost_usd"])) == Decimal("0.25")
    assert [group["group"] for group in report["data"]] == ["hide\\u0000me"]
    ready = httpx.get(f"{gateway.base_url}/readyz").json()
    assert ready["ledger"]["sanitized_events"] == 1 and ready["ledger"]["dead_letters"] == 0


def test_ordinary_events_are_not_flagged(acme_http: httpx.Client) -> None:
    body = chat_body(session_id="plain \\u0000 text")  # a backslash, not a NUL: stored as sent
    request_id = acme_http.post("/chat/completions", json=body).headers["X-Request-Id"]
    [row] = ledger_events([request_id]).values()
    assert not row.sanitized and row.session_id == "plain \\u0000 text"
