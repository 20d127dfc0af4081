"""POST /v1/chat/completions, top to bottom: authenticate + rate limit → spend cap → parse →
expand template → choose models → call with fallback → stream or return → bill and record."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from keys.auth import api_key_admit
from keys.limits import UNLIMITED, RateLimitState
from keys.spend import spend_add, spend_cap_check, spend_reserve
from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, GatewayError, UnsupportedMediaType
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import request_id_of
from routing.catalog import CatalogEntry, catalog_current
from routing.relay import relay_stream
from routing.resolve import Candidate, candidates_resolve, model_requested
from routing.schema import MESH_ONLY_FIELDS, ChatCompletionRequest, parse_chat_request
from routing.upstream import Attempt, complete_with_fallback, open_stream_with_fallback
from templates_app.expansion import ExpandedTemplate, template_expand
from usage.recording import usage_record
from usage.types import TokenUsage, UsageEventData


async def chat_completion(http: HttpRequest) -> HttpResponseBase:
    admission = await api_key_admit(authorization=http.headers.get("Authorization"))
    key = admission.key
    event = UsageEventData(
        request_id=request_id_of(http),
        tenant_id=key.tenant_id,
        key_id=key.key_id,
        model_requested="",
        started_at=time.time(),
    )
    async with ledger_entry(event, key) as ledger:
        ledger.limits = admission.rate_limit()  # counted with the authentication, one round trip
        await spend_cap_check(key=key)
        chat, raw = parse_chat_request(json_body(http))
        event.session_id = chat.session_id
        template = await expand_template(chat, key, event)
        event.model_requested = model_requested(
            request_model=chat.model, template_model=template.model if template else None, key=key
        )
        candidates = candidates_resolve(
            catalog=await catalog_current(), model_id=event.model_requested, fallbacks=chat.models, key=key
        )
        body = upstream_body(raw, chat, template)
        timeout = chat.timeout or settings.MESH_UPSTREAM_TIMEOUT_S
        await reserve_worst_case(event, key, candidates, body, timeout)
        attempts = ledger.attempts
        if chat.stream:
            stream = await open_stream_with_fallback(candidates, body, timeout=timeout, attempts=attempts)
            served(event, stream.candidate, attempts, streamed=True)
            prompt_estimate = len(orjson.dumps(body.get("messages"))) // 4
            await record_stream_opening(event, stream.candidate, prompt_estimate)
            ledger.deferred = True  # the relay bills when the stream ends, however it ends
            return sse_response(
                relay_stream(
                    stream,
                    event=event,
                    client_wants_usage=chat.wants_usage_in_stream,
                    prompt_tokens_estimate=prompt_estimate,
                    timeout=timeout,
                    on_finish=lambda: bill(event, key, stream.candidate),
                ),
                ledger.limits,
            )
        candidate, completion = await complete_with_fallback(
            candidates, body, timeout=timeout, attempts=attempts
        )
        served(event, candidate, attempts, streamed=False)
        event.tokens = completion.usage
        event.cost_usd = candidate.entry.cost(completion.usage)
        completion.payload["model"] = candidate.entry.model_id
        return json_response(completion.payload, ledger.limits)


class Ledger:
    """What the ledger entry learns inside the block: the rate-limit headers, the upstream tries,
    and whether a stream took over the billing."""

    def __init__(self) -> None:
        self.deferred = False
        self.limits: RateLimitState = UNLIMITED
        self.attempts: list[Attempt] = []

    def failed(self, event: UsageEventData, status: int, code: str) -> None:
        event.http_status, event.error_code = status, code
        event.attempts = event.attempts or [attempt.as_dict() for attempt in self.attempts]


@asynccontextmanager
async def ledger_entry(event: UsageEventData, key: ResolvedKey) -> AsyncIterator[Ledger]:
    """Bills and records `event` exactly once when the block ends, however it ends, unless a
    stream took it over (then the relay does, before the stream's last byte)."""
    ledger = Ledger()
    try:
        yield ledger
    except GatewayError as error:
        error.extra_headers.update(ledger.limits.headers())
        ledger.failed(event, error.http_status, error.code)
        await record(event, key)
        raise
    except asyncio.CancelledError:  # the client left before the answer: release any hold, record it
        ledger.failed(event, 499, "client_disconnected")
        event.cancelled = True
        await asyncio.shield(record(event, key))
        raise
    except Exception:  # a bug of ours: still one ledger entry (500), then the 500 handler
        ledger.failed(event, 500, "internal_error")
        await record(event, key)
        raise
    if not ledger.deferred:
        await asyncio.shield(record(event, key))  # a disconnect now must not cancel the billing


async def record(event: UsageEventData, key: ResolvedKey) -> None:
    """Bill the spend counters and make the ledger entry durable, both before the last byte; they
    are independent writes, so they travel side by side (one round trip of latency, not two)."""
    event.latency_ms = int((time.time() - event.started_at) * 1000)
    await asyncio.gather(
        spend_add(key=key, cost_usd=event.cost_usd, at=event.started_at, request_id=event.request_id),
        usage_record(event=event),
    )


async def record_stream_opening(event: UsageEventData, candidate: Candidate, prompt_tokens: int) -> None:
    """A provisional ledger entry billing the prompt, written before the first byte is relayed:
    if this process dies mid-stream it is what finance sees; the stream's final entry replaces it."""
    tokens = TokenUsage(prompt_tokens=prompt_tokens)
    opening = dataclasses.replace(
        event,
        tokens=tokens,
        tokens_estimated=True,
        cost_usd=candidate.entry.cost(tokens),
        error_code="stream_unfinished",
        attempts=list(event.attempts),
        latency_ms=int((time.time() - event.started_at) * 1000),
        provisional=True,
    )
    await usage_record(event=opening)


async def bill(event: UsageEventData, key: ResolvedKey, candidate: Candidate) -> None:
    event.cost_usd = candidate.entry.cost(event.tokens)
    await record(event, key)


def served(event: UsageEventData, candidate: Candidate, attempts: list[Attempt], *, streamed: bool) -> None:
    event.model_served = candidate.entry.model_id
    event.provider = candidate.adapter.name
    event.attempts = [attempt.as_dict() for attempt in attempts]
    event.streamed = streamed


async def reserve_worst_case(
    event: UsageEventData, key: ResolvedKey, candidates: list[Candidate], body: dict[str, Any], timeout: float
) -> None:
    """Hard caps only: hold the worst-case cost before any upstream call (402 if it does not fit)."""
    if key.hard_capped:
        await spend_reserve(
            key=key,
            request_id=event.request_id,
            worst_case_usd=worst_case_usd(candidates, body),
            at=event.started_at,
            hold_s=timeout,
        )


def worst_case_usd(candidates: list[Candidate], body: dict[str, Any]) -> Decimal:
    """The most this request can cost at any candidate's prices: each byte of the body counted as a
    prompt token (tokenizers yield fewer tokens than bytes) plus the whole output allowance."""
    prompt_tokens = len(orjson.dumps(body))
    choices = max(body["n"], 1) if isinstance(body.get("n"), int) else 1
    asked = body.get("max_completion_tokens") or body.get("max_tokens")

    def output_allowance(entry: CatalogEntry) -> int:
        return asked if isinstance(asked, int) else entry.max_output_tokens or entry.context_window

    return max(
        c.entry.cost(
            TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=choices * output_allowance(c.entry))
        )
        for c in candidates
    )


def json_body(http: HttpRequest) -> bytes:
    content_type = http.content_type or ""
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {content_type or 'missing'!r}.", param="Content-Type"
        )
    return http.body


async def expand_template(
    chat: ChatCompletionRequest, key: ResolvedKey, event: UsageEventData
) -> ExpandedTemplate | None:
    if chat.async_mode:
        raise BadRequest("async_mode is not available on this deployment.", param="async_mode")
    if chat.template is None:
        return None
    template = await template_expand(
        tenant_id=key.tenant_id, ref=chat.template, variables=chat.variables or {}
    )
    event.template_id, event.template_version = template.template_id, template.version
    return template


def upstream_body(
    raw: dict[str, Any], chat: ChatCompletionRequest, template: ExpandedTemplate | None
) -> dict[str, Any]:
    """What OpenAI-compatible upstreams receive: the request as sent (unknown fields intact)
    minus Mesh's own fields, over the template's defaults, template messages first."""
    body = {name: value for name, value in raw.items() if name not in MESH_ONLY_FIELDS}
    if template is not None:
        body = {**template.params, **body, "messages": [*template.messages, *(raw.get("messages") or [])]}
    return body


def json_response(payload: dict[str, Any], limits: RateLimitState) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), content_type="application/json")
    for name, value in limits.headers().items():
        response[name] = value
    return response


def sse_response(body: AsyncIterator[bytes], limits: RateLimitState) -> EventStreamResponse:
    response = EventStreamResponse(body)
    for name, value in limits.headers().items():
        response[name] = value
    return response
