"""The ledger's XADD queued beside its billing script (usage.recording.usage_record_queued): its
reply is handled by a callback, so whatever Redis answers, the event is kept exactly once."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest
import redis
from django.conf import settings

from keys.services import CreatedKey
from tests.usage.conftest import stream_events, usage_event
from usage.models import UsageEvent
from usage.recording import STREAM, usage_record_queued, usage_record_written, usage_writes_drain
from usage.types import UsageEventData


def _queued(event: UsageEventData) -> None:
    async def run() -> None:
        written = usage_record_queued(event=event)
        assert written is not None  # Redis was tried, not skipped
        await usage_record_written(written)
        await usage_writes_drain()  # a fallback insert, if one was started

    asyncio.run(run())


def test_an_answered_xadd_leaves_the_event_in_the_stream_only(acme_key: CreatedKey) -> None:
    event = usage_event(acme_key, days_ago=0, session="queued", cost=Decimal("0.25"))
    _queued(event)
    assert [e.request_id for e in stream_events()] == [event.request_id]
    assert not UsageEvent.objects.filter(request_id=event.request_id).exists()


def test_an_xadd_redis_refuses_is_logged_and_the_event_stored_directly(
    acme_key: CreatedKey, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage (a WRONGTYPE reply): the request was answered already, so the refusal is
    logged as the bug it is, and the event goes to PostgreSQL as during an outage."""
    test_redis = redis.Redis.from_url(settings.REDIS_URL)
    event = usage_event(acme_key, days_ago=0, session="refused", cost=Decimal("0.5"))
    test_redis.delete(STREAM)
    test_redis.set(STREAM, b"not a stream")
    try:
        with caplog.at_level(logging.ERROR, logger="usage.recording"):
            _queued(event)
    finally:
        test_redis.delete(STREAM)
    [row] = UsageEvent.objects.filter(request_id=event.request_id)
    assert row.cost_usd == Decimal("0.5")
    assert any("XADD refused" in record.getMessage() for record in caplog.records)
