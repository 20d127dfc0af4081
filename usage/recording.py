"""Recording usage events from the pipeline."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from meshplatform.db import db_call
from usage.models import UsageEvent
from usage.types import UsageEventData


def _row(event: UsageEventData) -> UsageEvent:
    return UsageEvent(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        api_key_id=event.key_id,
        session_id=event.session_id or "",
        template_id=event.template_id or "",
        template_version=event.template_version,
        model_requested=event.model_requested,
        model_served=event.model_served or "",
        provider=event.provider or "",
        attempts=event.attempts,
        prompt_tokens=event.tokens.prompt_tokens,
        completion_tokens=event.tokens.completion_tokens,
        cached_tokens=event.tokens.cached_tokens,
        cost_usd=event.cost_usd,
        latency_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        http_status=event.http_status,
        error_code=event.error_code or "",
        streamed=event.streamed,
        cancelled=event.cancelled,
        created_at=datetime.fromtimestamp(event.started_at, UTC),
    )


@db_call
def _insert(event: UsageEventData) -> None:
    UsageEvent.objects.bulk_create([_row(event)], ignore_conflicts=True)


async def usage_record(*, event: UsageEventData) -> None:
    """Write the request's ledger entry (once: request_id is unique)."""
    if event.latency_ms is None:
        event.latency_ms = int((time.time() - event.started_at) * 1000)
    await _insert(event)
