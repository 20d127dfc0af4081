"""Typed values of the usage ledger, shared with the routing pipeline that produces them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

DEFAULT_ENDPOINT = "chat.completions"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens the upstream reported for one request (cached tokens, read from or written to the
    provider's prompt cache, are part of prompt tokens)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    # Prompt tokens written to the cache (Anthropic bills them above the input price).
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEventData:
    """One request's ledger record as written (the stream's wire format, the table's row); built
    once per write by `usage.ledger.LedgerEntry`, the one place that decides what is billed."""

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
    # True when the upstream's own count never arrived (stream cut off) and the relay estimated it.
    tokens_estimated: bool = False
    cost_usd: Decimal = Decimal(0)
    latency_ms: int | None = None
    ttft_ms: int | None = None
    http_status: int = 200
    error_code: str | None = None
    streamed: bool = False
    cancelled: bool = False
    # A stream's opening entry, written when its first chunk is relayed: if the process dies
    # before the stream ends, this is what gets billed. The final entry replaces it.
    provisional: bool = False
    # The comparison (POST /v1/compare) this request was one model's run of; None otherwise.
    comparison_id: str | None = None
    # Which API was called ("embeddings", "images.generations"…); encoded only when not the default.
    endpoint: str = DEFAULT_ENDPOINT
    images: int = 0  # images generated (image requests), encoded only when not zero


GroupBy = Literal["day", "session_id", "key", "model", "tenant"]
# What API consumers may group by; "tenant" is for finance in the admin (a key sees one tenant).
API_GROUP_BY: tuple[GroupBy, ...] = ("day", "session_id", "key", "model")
ADMIN_GROUP_BY: tuple[GroupBy, ...] = ("day", "tenant", "key", "session_id", "model")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """What a report covers: a tenant (None = every tenant, finance only), an inclusive date range."""

    tenant_id: int | None
    date_from: dt.date
    date_to: dt.date
    session_id: str | None = None
    key_id: int | None = None
    model: str | None = None
    comparison_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One row of a grouped report: the group's value (a day, session id, key or model) and its totals."""

    value: str
    totals: UsageTotals
    key_prefix: str | None = None
    key_name: str | None = None
    tenant_name: str | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Totals over the whole filter, and one page of its groups (`group_count` groups in all)."""

    filter: UsageFilter
    group_by: GroupBy
    totals: UsageTotals
    groups: list[UsageGroup]
    group_count: int
