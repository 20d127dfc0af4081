"""Typed values of the usage ledger, shared with the routing pipeline that produces them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens the upstream reported for one request (cached tokens are part of prompt tokens)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class UsageEventData:
    """One request's ledger entry, filled in by the pipeline as the request progresses."""

    request_id: str
    tenant_id: int
    key_id: int
    model_requested: str
    started_at: float
    session_id: str | None = None
    template_id: str | None = None
    template_version: int | None = None
    model_served: str | None = None
    provider: str | None = None
    attempts: list[dict[str, object]] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: Decimal = Decimal(0)
    latency_ms: int | None = None
    ttft_ms: int | None = None
    http_status: int = 200
    error_code: str | None = None
    streamed: bool = False
    cancelled: bool = False
