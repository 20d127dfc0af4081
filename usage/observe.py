"""What a request's final record tells operators: its Prometheus samples and its one JSON access
line, from one hook the ledger calls (`request_observed`), plus the in-flight gauges.

The access line holds what the ledger knows (ids, tenant, key prefix, models, status, tokens,
cost, timings), never a prompt, a completion or a key: the ledger entry carries none of them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

import structlog
from django.conf import settings

from keys.types import ResolvedKey
from meshplatform.logs import json_renderer, timestamp
from meshplatform.metric_samples import (
    GaugeSamples,
    Tallies,
    Value,
    bucket_of,
    counter_values,
    histogram_values,
)
from meshplatform.metrics import (
    COST,
    FALLBACKS,
    IN_FLIGHT,
    LATENCY_BOUNDS,
    METRICS_ON,
    NONE,
    REFUSALS,
    REQUEST_DURATION,
    REQUESTS,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    UPSTREAM_ERRORS,
    UPSTREAM_RETRIES,
    Children,
    tenant_label,
)
from usage.types import UsageEventData

logger = logging.getLogger(__name__)
REFUSAL_REASONS = {"rate_limit_exceeded": "rate_limit", "spend_limit_exceeded": "spend_cap"}


# Rendered by structlog and written straight to stdout, one line each (the app's other logs go to
# stderr through settings.LOGGING): a stdlib LogRecord would cost more than the line itself.
def access_logger(stream: TextIO, *, enabled: bool) -> Any:
    level = logging.INFO if enabled else logging.CRITICAL  # the line is logged at INFO
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[timestamp, json_renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,  # else every line binds a new logger first
    )


access_log = access_logger(sys.stdout, enabled=settings.MESH_ACCESS_LOG)


class AttemptLike(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def error_code(self) -> str | None: ...


_upstream_errors = Children(UPSTREAM_ERRORS)
_retries = Children(UPSTREAM_RETRIES)
_fallbacks = Children(FALLBACKS)
_requests_in_flight = GaugeSamples(IN_FLIGHT.labels("requests"))
_streams_in_flight = GaugeSamples(IN_FLIGHT.labels("streams"))

# A request's samples, summed per (status, error code, model, provider, tenant) in one list of
# amounts (meshplatform.metric_samples): the request count, the duration and time-to-first-token
# histograms (sum, then buckets), tokens by kind, cost, and a refusal when the code is one.
BUCKETS = len(LATENCY_BOUNDS)
REQUEST = 0
DURATION = 1
TTFT = DURATION + 1 + BUCKETS
PROMPT = TTFT + 1 + BUCKETS
COMPLETION = PROMPT + 1
CACHED = COMPLETION + 1
COST_USD = CACHED + 1
REFUSAL = COST_USD + 1


def _request_values(labels: tuple[str, str, str, str, str]) -> list[Value]:
    status, code, model, provider, tenant = labels
    values = [
        *counter_values(REQUESTS.labels(status, code, model, provider, tenant)),
        *histogram_values(REQUEST_DURATION.labels(model, provider)),
        *histogram_values(TIME_TO_FIRST_TOKEN.labels(model, provider)),
        *counter_values(TOKENS.labels("prompt", model, provider, tenant)),
        *counter_values(TOKENS.labels("completion", model, provider, tenant)),
        *counter_values(TOKENS.labels("cached", model, provider, tenant)),
        *counter_values(COST.labels(model, provider, tenant)),
    ]
    reason = REFUSAL_REASONS.get(code)
    if reason is not None:
        values += counter_values(REFUSALS.labels(reason, tenant))
    return values


_request_tallies = Tallies(_request_values)


def request_started() -> None:
    if METRICS_ON:
        _requests_in_flight.inc()


def stream_started() -> None:
    if METRICS_ON:
        _streams_in_flight.inc()


def request_ended(*, streamed: bool) -> None:
    if METRICS_ON:
        _requests_in_flight.dec()
        if streamed:
            _streams_in_flight.dec()


def request_observed(*, key: ResolvedKey, event: UsageEventData, attempts: Sequence[AttemptLike]) -> None:
    """The request's samples and access line; never raises into the billing it follows."""
    try:
        if METRICS_ON:
            _samples(key, event, attempts)
        _access_line(key, event, len(attempts))
    except Exception:  # metrics and logs must never fail a billed request
        logger.exception("observing request %s failed", event.request_id)


def _samples(key: ResolvedKey, event: UsageEventData, attempts: Sequence[AttemptLike]) -> None:
    labels = (
        str(event.http_status),
        event.error_code or "",
        event.model_served or NONE,
        event.provider or NONE,
        tenant_label(key.tenant_name),
    )
    tokens, latency_ms, ttft_ms, cost = event.tokens, event.latency_ms, event.ttft_ms, event.cost_usd
    with _request_tallies.lock:
        amounts = _request_tallies.amounts(labels)
        amounts[REQUEST] += 1
        if latency_ms is not None:
            amounts[DURATION] += latency_ms / 1000
            amounts[DURATION + 1 + bucket_of(LATENCY_BOUNDS, latency_ms / 1000)] += 1
        if ttft_ms is not None:
            amounts[TTFT] += ttft_ms / 1000
            amounts[TTFT + 1 + bucket_of(LATENCY_BOUNDS, ttft_ms / 1000)] += 1
        amounts[PROMPT] += tokens.prompt_tokens
        amounts[COMPLETION] += tokens.completion_tokens
        amounts[CACHED] += tokens.cached_tokens
        if cost:
            amounts[COST_USD] += float(cost)
        if len(amounts) > REFUSAL:
            amounts[REFUSAL] += 1
    previous: AttemptLike | None = None
    for attempt in attempts:
        if attempt.error_code is not None:
            _upstream_errors(attempt.provider, attempt.error_code).inc()
        if previous is not None:
            same = previous.model == attempt.model and previous.provider == attempt.provider
            (_retries if same else _fallbacks)(attempt.provider).inc()
        previous = attempt


def _access_line(key: ResolvedKey, event: UsageEventData, attempts: int) -> None:
    tokens = event.tokens
    access_log.info(
        "request",
        request_id=event.request_id,
        tenant=key.tenant_name,
        tenant_id=key.tenant_id,
        key_prefix=key.key_prefix,
        model_requested=event.model_requested,
        model_served=event.model_served,
        provider=event.provider,
        status=event.http_status,
        error_code=event.error_code,
        latency_ms=event.latency_ms,
        ttft_ms=event.ttft_ms,
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
        cached_tokens=tokens.cached_tokens,
        tokens_estimated=event.tokens_estimated,
        cost_usd=str(event.cost_usd),
        streamed=event.streamed,
        cancelled=event.cancelled,
        attempts=attempts,
    )
