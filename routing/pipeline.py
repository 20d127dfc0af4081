"""A chat completion, top to bottom, with no HTTP in it: rate limit → spend cap → expand template →
choose models → hold the worst case → call with fallback → a billed answer or an open stream.

The caller authenticates and parses (the HTTP view, a Celery task, a batch line); every outcome
after authentication is billed and recorded by the request's `usage.ledger.LedgerEntry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, Protocol

from django.conf import settings

from jobs.serializers import JobObject, job_object
from jobs.services.jobs import job_submit
from jobs.webhooks import webhook_url_validate
from keys.auth import Admission
from keys.limits import RateLimitState
from keys.spend import SpendHold, spend_cap_check, spend_reserve
from meshplatform import tracing
from meshplatform.db import db_call
from meshplatform.errors import BadRequest, GatewayError
from routing.catalog import catalog_current
from routing.pricing import expected_usd, worst_case_usd
from routing.relay import CompletionStream, prompt_tokens_estimate
from routing.resolve import Candidate, candidates_resolve, model_requested
from routing.schema import ChatCompletionRequest
from routing.upstream import complete_with_fallback, open_stream_with_fallback
from templates_app.expansion import ExpandedTemplate, template_expand
from usage.ledger import LedgerEntry
from usage.types import DEFAULT_ENDPOINT, TokenUsage


@dataclass(frozen=True, slots=True)
class ChatCompletionResult:
    """A whole answer, already billed: OpenAI's `chat.completion` object (its `model` is the id
    that served), what it used, and the key's rate-limit state (the `x-ratelimit-*` headers)."""

    payload: dict[str, Any]
    usage: TokenUsage
    model: str
    request_id: str
    rate_limits: RateLimitState


@dataclass(frozen=True, slots=True)
class ChatAccepted:
    """An `async_mode` request that passed every check (a hard cap holds its worst case under
    `request_id`): the queued job (`jobs.serializers.job_object`), run and billed by a worker."""

    job: JobObject
    rate_limits: RateLimitState


class SpendGate(Protocol):
    """Holds a request's cost together with others' (a compare's runs, refused or held as a whole)
    instead of on its own: called where `spend_reserve` would be, with what it would hold."""

    async def __call__(
        self, *, entry: LedgerEntry, worst_case_usd: Decimal, expected_usd: Decimal, hold_s: float
    ) -> SpendHold | None: ...


async def chat_completion(
    *,
    admission: Admission,
    chat: ChatCompletionRequest,
    request_id: str,
    timeout_s: float | None = None,
    accepted: bool = False,
    comparison_id: str | None = None,
    spend_gate: SpendGate | None = None,
    adapt: Callable[[list[Candidate]], list[Candidate]] | None = None,
    started_at: float | None = None,
) -> ChatCompletionResult | CompletionStream | ChatAccepted:
    """Run `chat` for the admitted key: a `ChatCompletionResult`, or for `stream=True` an open
    `CompletionStream`; a refusal or failure is raised as a `GatewayError` (already recorded).

    Any caller, not only the HTTP view: `admission` comes from `keys.auth.api_key_admit` (or
    `Admission(key=..., limits=UNLIMITED)` for work whose key was checked when it was accepted),
    `chat` from `routing.schema.parse_chat_request` / `validate_chat_request`, `request_id`
    is the ledger's unique id (`meshplatform.request_ids.new_request_id()`), and `timeout_s`
    bounds the upstream call (default: the request's `timeout`, else MESH_UPSTREAM_TIMEOUT_S).
    A stream must be consumed or closed by the caller, or its billing waits for the finaliser:
    `async with stream: async for chunk in stream.chunks(): ...` (the view sends `stream.sse()`).
    The stream is billed when it ends, or at `aclose()` for what the upstream produced so far.
    `async_mode` requests come back as `ChatAccepted` after the same checks; `accepted=True` runs
    such a job later (in a worker, under its submission's `request_id`): its spend cap was checked
    and its worst case held at submission, so neither happens again (that hold is settled by this
    run's billing; a second hold under the same id would never be released).
    A compare's run of one model passes its `comparison_id` (recorded on its usage event) and a
    `spend_gate` that holds all the runs' costs at once (routing.compare.spend).
    `adapt` may swap the resolved candidates' adapters (the Responses API asks OpenAI natively).
    `started_at` (epoch s) dates the usage event when the request began before this call (a job:
    its submission), so every run of one request id writes the same ledger row.
    """
    key = admission.key
    entry = LedgerEntry(
        key=key,
        request_id=request_id,
        session_id=chat.session_id,
        comparison_id=comparison_id,
        started_at=started_at,
    )
    async with entry.guard():
        with tracing.request_span(request_id), admission.verdict() as limits:
            template = await _template(chat, entry)
            with tracing.span("mesh.model.resolve"):
                template_model = template.model if template is not None else None
                model_id = model_requested(request_model=chat.model, template_model=template_model, key=key)
                entry.model_asked(model_id)
                catalog = await catalog_current()
                candidates = candidates_resolve(
                    catalog=catalog, model_id=entry.model_requested, fallbacks=chat.models, key=key
                )
                if adapt is not None:
                    candidates = adapt(candidates)
            body = upstream_body(chat, template)
            timeout = timeout_s or chat.timeout or settings.MESH_UPSTREAM_TIMEOUT_S
            if not accepted:
                await _hold_spend(entry, candidates, chat, template, body, timeout, spend_gate)
            if chat.async_mode and not accepted:
                return ChatAccepted(job=await _job_submit(entry, chat), rate_limits=limits)
            await _note_in_flight(entry, candidates, body, timeout)
            if chat.stream:
                return await _stream_open(entry, candidates, chat, body, timeout, limits)
            candidate, completion = await complete_with_fallback(
                candidates, body, timeout=timeout, attempts=entry.attempts
            )
            await entry.served(candidate.served_by, completion.usage)
            completion.payload["model"] = candidate.entry.model_id
            return ChatCompletionResult(
                payload=completion.payload,
                usage=completion.usage,
                model=candidate.entry.model_id,
                request_id=request_id,
                rate_limits=limits,
            )


_submit = db_call(job_submit)
JOB_ONLY_FIELDS = ("async_mode", "webhook_url")  # what the worker's run of the request leaves out


async def _job_submit(entry: LedgerEntry, chat: ChatCompletionRequest) -> JobObject:
    """Queue the admitted request; its one ledger entry is the worker run's (same request id)."""
    if chat.stream:
        raise BadRequest("async_mode cannot be combined with stream.", param="stream")
    if chat.webhook_url is not None:
        webhook_url_validate(chat.webhook_url)
    job = await _submit(
        key=entry.key,
        request_id=entry.request_id,
        model=entry.model_requested,
        session_id=chat.session_id,
        request={name: value for name, value in chat.raw.items() if name not in JOB_ONLY_FIELDS},
        webhook_url=chat.webhook_url,
    )
    entry.handed_off()
    return job_object(job)


async def request_refused(
    *,
    admission: Admission,
    request_id: str,
    error: GatewayError,
    session_id: str | None = None,
    endpoint: str = DEFAULT_ENDPOINT,
    started_at: float | None = None,
) -> NoReturn:
    """Refuse a request the caller could not run (a body that is not a valid request, a mode this
    deployment does not serve), on any endpoint: recorded like any refusal after authentication.
    The key's rate limit and spend cap refuse first, as they would a valid request."""
    entry = LedgerEntry(
        key=admission.key,
        request_id=request_id,
        session_id=session_id,
        endpoint=endpoint,
        started_at=started_at,
    )
    async with entry.guard():
        with admission.verdict():
            await spend_cap_check(key=admission.key)
            raise error


async def request_replayed(
    *, admission: Admission, request_id: str, status: int, endpoint: str = DEFAULT_ENDPOINT
) -> None:
    """A retry answered with an earlier request's stored answer (routing.idempotency): recorded at
    no cost. The key's rate limit still counts it and refuses it when exhausted, as any request."""
    entry = LedgerEntry(key=admission.key, request_id=request_id, endpoint=endpoint)
    async with entry.guard():
        with admission.verdict():
            await entry.replayed(status=status)


async def _template(chat: ChatCompletionRequest, entry: LedgerEntry) -> ExpandedTemplate | None:
    if chat.template is None:
        return None
    with tracing.span("mesh.template.expand"):
        template = await template_expand(
            tenant_id=entry.key.tenant_id, ref=chat.template, variables=chat.variables or {}
        )
    entry.template_used(template.template_id, template.version)
    return template


def upstream_body(chat: ChatCompletionRequest, template: ExpandedTemplate | None) -> dict[str, Any]:
    """What OpenAI-compatible upstreams receive: the request as sent (unknown fields intact)
    minus Mesh's own fields, over the template's defaults, template messages first."""
    body = chat.upstream_fields()
    if template is not None:
        messages = [*template.messages, *(chat.raw.get("messages") or [])]
        body = {**template.params, **body, "messages": messages}
    return body


async def _stream_open(
    entry: LedgerEntry,
    candidates: list[Candidate],
    chat: ChatCompletionRequest,
    body: dict[str, Any],
    timeout: float,
    limits: RateLimitState,
) -> CompletionStream:
    upstream = await open_stream_with_fallback(candidates, body, timeout=timeout, attempts=entry.attempts)
    prompt_tokens = prompt_tokens_estimate(body)
    stream = CompletionStream(
        upstream,
        entry=entry,
        client_wants_usage=chat.wants_usage_in_stream,
        prompt_tokens_estimate=prompt_tokens,
        timeout=timeout,
        rate_limits=limits,
    )
    try:
        await entry.stream_opened(upstream.candidate.served_by, prompt_tokens=prompt_tokens)
    except BaseException:  # nobody will hold the stream: close the upstream and bill it here
        await stream.aclose()
        raise
    return stream


async def _note_in_flight(
    entry: LedgerEntry, candidates: list[Candidate], body: dict[str, Any], timeout: float
) -> None:
    """What to bill if this worker dies before the final record: the prompt estimate, finalised by
    beat once every candidate's timeout (and a grace) has passed."""
    longest = len(candidates) * timeout + settings.MESH_STREAM_FINALISE_GRACE_S
    await entry.in_flight(
        candidates[0].served_by,
        prompt_tokens=prompt_tokens_estimate(body),
        finalise_after=entry.started_at + longest,
    )


async def _hold_spend(
    entry: LedgerEntry,
    candidates: list[Candidate],
    chat: ChatCompletionRequest,
    template: ExpandedTemplate | None,
    body: dict[str, Any],
    timeout: float,
    spend_gate: SpendGate | None = None,
) -> None:
    """The spend caps, before any upstream call: hold the worst case against hard caps and the
    expected cost against soft ones (402 if it does not fit, or a soft cap is reached)."""
    key = entry.key
    hard, soft = key.hard_capped, key.soft_capped
    if not (hard or soft):  # nothing to hold against: no estimate, no Redis round trip
        return
    with tracing.span("mesh.spend.hold"):
        worst = worst_case_usd(candidates, chat, template, body) if hard else Decimal(0)
        expected = expected_usd(candidates, chat, template, body) if soft else Decimal(0)
        if spend_gate is not None:
            hold_s = timeout
            entry.hold = await spend_gate(
                entry=entry, worst_case_usd=worst, expected_usd=expected, hold_s=hold_s
            )
            return
        entry.hold = await spend_reserve(
            key=key,
            request_id=entry.request_id,
            worst_case_usd=worst,
            expected_usd=expected,
            at=entry.started_at,
            hold_s=timeout,
        )
