"""The ledger's wire format: a usage event as write-ahead stream bytes, and as a database row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from usage.models import UsageEvent
from usage.types import DEFAULT_ENDPOINT, TokenUsage, UsageEventData

FORMAT_VERSION = 1


class UndecodableEvent(ValueError):
    """A stream entry that is not a usage event this code can read (kept aside, never retried forever)."""


def event_encode(event: UsageEventData) -> bytes:
    """Compact JSON; the cost travels as a decimal string so no float ever touches money."""
    tokens = event.tokens
    payload = {
        "v": FORMAT_VERSION,
        "request_id": event.request_id,
        "tenant_id": event.tenant_id,
        "key_id": event.key_id,
        "session_id": event.session_id,
        "template_id": event.template_id,
        "template_version": event.template_version,
        "model_requested": event.model_requested,
        "model_served": event.model_served,
        "provider": event.provider,
        "attempts": event.attempts,
        "tokens": [tokens.prompt_tokens, tokens.completion_tokens, tokens.cached_tokens],
        "tokens_estimated": event.tokens_estimated,
        "cost_usd": str(event.cost_usd),
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "http_status": event.http_status,
        "error_code": event.error_code,
        "streamed": event.streamed,
        "cancelled": event.cancelled,
        "provisional": event.provisional,
        "started_at": event.started_at,
    }
    if event.comparison_id is not None:  # only a compare's runs carry it: a chat event encodes as before
        payload["comparison_id"] = event.comparison_id
    if event.endpoint != DEFAULT_ENDPOINT or event.images:  # only other endpoints' events carry these
        payload["endpoint"], payload["images"] = event.endpoint, event.images
    return orjson.dumps(payload)


def event_decode(raw: bytes) -> UsageEventData:
    try:
        data: dict[str, Any] = orjson.loads(raw)
        if data.get("v") != FORMAT_VERSION:
            raise UndecodableEvent(f"unknown usage event format {data.get('v')!r}")
        prompt, completion, cached = data["tokens"]
        return UsageEventData(
            request_id=data["request_id"],
            tenant_id=int(data["tenant_id"]),
            key_id=int(data["key_id"]),
            model_requested=data["model_requested"] or "",
            started_at=float(data["started_at"]),
            session_id=data["session_id"],
            template_id=data["template_id"],
            template_version=data["template_version"],
            model_served=data["model_served"],
            provider=data["provider"],
            attempts=list(data["attempts"] or []),
            tokens=TokenUsage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached),
            tokens_estimated=bool(data["tokens_estimated"]),
            cost_usd=Decimal(data["cost_usd"]),
            latency_ms=data["latency_ms"],
            ttft_ms=data["ttft_ms"],
            http_status=int(data["http_status"]),
            error_code=data["error_code"],
            streamed=bool(data["streamed"]),
            cancelled=bool(data["cancelled"]),
            provisional=bool(data.get("provisional", False)),
            comparison_id=data.get("comparison_id"),
            endpoint=str(data.get("endpoint") or DEFAULT_ENDPOINT),
            images=int(data.get("images") or 0),
        )
    except UndecodableEvent:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise UndecodableEvent(f"{type(error).__name__}: {error}") from error


# PostgreSQL text and jsonb cannot hold NUL; such a value is stored escaped (and the row flagged),
# never refused: an event the database would refuse is money that would go unbilled.
NUL = "\x00"
NUL_ESCAPED = "\\u0000"


def _escaped(value: str) -> str:
    return value.replace(NUL, NUL_ESCAPED)


def _json_escaped(value: Any) -> Any:
    """`value` (decoded JSON) with NUL escaped in every string, keys included."""
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, list):
        return [_json_escaped(item) for item in value]
    if isinstance(value, dict):
        return {_escaped(str(k)): _json_escaped(v) for k, v in value.items()}
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False


def event_needs_escaping(event: UsageEventData) -> bool:
    """Whether a value of `event` cannot be stored as is."""
    texts = (event.request_id, event.session_id, event.template_id, event.model_requested)
    more = (event.model_served, event.provider, event.error_code)
    return _holds_nul([*texts, *more]) or _holds_nul(event.attempts)


def _text(value: str | None, limit: int) -> str:
    return _escaped(value or "")[:limit]


def _count(value: int) -> int:
    """Token and millisecond columns are 32-bit in PostgreSQL; clamp instead of failing a batch."""
    return max(0, min(int(value), 2_147_483_647))


def _millis(value: int | None) -> int | None:
    return None if value is None else _count(value)


def event_row(event: UsageEventData) -> UsageEvent:
    """The row for `event`; values PostgreSQL cannot hold are escaped and the row `sanitized`."""
    tokens = event.tokens
    sanitized = event_needs_escaping(event)
    return UsageEvent(
        request_id=_text(event.request_id, 40),
        tenant_id=event.tenant_id,
        api_key_id=event.key_id,
        session_id=_text(event.session_id, 256),
        template_id=_text(event.template_id, 64),
        template_version=event.template_version,
        model_requested=_text(event.model_requested, 200),
        model_served=_text(event.model_served, 200),
        provider=_text(event.provider, 20),
        attempts=_json_escaped(event.attempts) if sanitized else event.attempts,
        prompt_tokens=_count(tokens.prompt_tokens),
        completion_tokens=_count(tokens.completion_tokens),
        cached_tokens=_count(tokens.cached_tokens),
        tokens_estimated=event.tokens_estimated,
        cost_usd=event.cost_usd,
        latency_ms=_millis(event.latency_ms),
        ttft_ms=_millis(event.ttft_ms),
        http_status=event.http_status,
        error_code=_text(event.error_code, 40),
        streamed=event.streamed,
        cancelled=event.cancelled,
        provisional=event.provisional,
        sanitized=sanitized,
        comparison_id=_text(event.comparison_id, 40),
        endpoint=event.endpoint[:32],
        images=_count(event.images),
        created_at=datetime.fromtimestamp(event.started_at, UTC),
    )
