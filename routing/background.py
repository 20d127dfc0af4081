"""The pipeline off the request path: a job or a batch line runs the same steps as
POST /v1/chat/completions (limits, caps, template, model, fallback, billing, one usage event),
with no HttpRequest. Jobs were admitted at submission; batch lines are admitted here."""

from __future__ import annotations

import contextlib
import time

import orjson
from django.conf import settings
from redis.exceptions import RedisError

from jobs.types import CompletionOutcome, CompletionWork
from keys.limits import rate_limit_check
from keys.spend import spend_add, spend_cap_check
from meshplatform.errors import BadRequest, GatewayError, RateLimited
from meshplatform.redis import get_redis
from routing.catalog import catalog_current
from routing.pipeline import expand_template, ledger_entry, reserve_worst_case, served, upstream_body
from routing.resolve import candidates_resolve, model_requested
from routing.schema import parse_chat_request
from routing.upstream import complete_with_fallback
from usage.recording import usage_record
from usage.types import TokenUsage, UsageEventData

OUTCOME_TTL_S = 3 * 24 * 3600


def outcome_name(request_id: str) -> str:
    return f"{{mesh:jobs}}:outcome:{request_id}"


async def completion_run(work: CompletionWork) -> CompletionOutcome:
    """What a synchronous client would have got, as a status and a body; run at most once per
    request id: a run taken over after its worker died between billing and storing the outcome
    finds the outcome here instead of calling (and billing) the upstream again."""
    done = await _outcome_get(work.request_id)
    if done is not None:
        return done
    outcome = await _completion_run(work)
    if outcome.status_code != 429:  # a rate-limited line was no request yet: it runs later
        await _outcome_put(work.request_id, outcome)
    return outcome


async def _outcome_get(request_id: str) -> CompletionOutcome | None:
    try:
        raw = await get_redis().get(outcome_name(request_id))
    except (RedisError, OSError):
        return None
    if raw is None:
        return None
    data = orjson.loads(raw)
    return CompletionOutcome(
        status_code=data["status_code"], body=data["body"], usage=TokenUsage(**data["usage"])
    )


async def _outcome_put(request_id: str, outcome: CompletionOutcome) -> None:
    usage = outcome.usage
    data = {
        "status_code": outcome.status_code,
        "body": outcome.body,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
        },
    }
    # Without Redis the ledger still keeps the event once; only a take-over would call again.
    with contextlib.suppress(RedisError, OSError):
        await get_redis().set(outcome_name(request_id), orjson.dumps(data), ex=OUTCOME_TTL_S)


async def _completion_run(work: CompletionWork) -> CompletionOutcome:
    key = work.key
    if not work.admitted:
        try:
            key.ensure_usable()
            await rate_limit_check(key=key, key_hash=work.key_hash)
        except RateLimited as refusal:  # not yet a request: the batch waits for the window
            return CompletionOutcome(
                status_code=429,
                body=dict(refusal.envelope(work.request_id)),
                retry_after_s=float(refusal.retry_after_seconds or 1),
            )
        except GatewayError as error:
            return _failed(error, work)
    given = work.body.get("session_id")
    event = UsageEventData(
        request_id=work.request_id,
        tenant_id=key.tenant_id,
        key_id=key.key_id,
        model_requested="",
        started_at=time.time(),
        session_id=given if isinstance(given, str) else work.default_session_id,  # also if it is refused
    )
    try:
        async with ledger_entry(event, key) as ledger:
            if not work.admitted:
                await spend_cap_check(key=key)
            raw_body = orjson.dumps(work.body)
            chat, raw = parse_chat_request(raw_body)
            if chat.stream:
                raise BadRequest("stream is not available for async jobs and batches.", param="stream")
            event.session_id = chat.session_id or work.default_session_id
            template = await expand_template(chat.model_copy(update={"async_mode": False}), key, event)
            event.model_requested = model_requested(
                request_model=chat.model, template_model=template.model if template else None, key=key
            )
            candidates = candidates_resolve(
                catalog=await catalog_current(),
                model_id=event.model_requested,
                fallbacks=chat.models,
                key=key,
            )
            body = upstream_body(raw, chat, template)
            timeout = chat.timeout or settings.MESH_UPSTREAM_TIMEOUT_S
            if not work.admitted:
                await reserve_worst_case(event, key, candidates, body, timeout)
            candidate, completion = await complete_with_fallback(
                candidates, body, timeout=timeout, attempts=ledger.attempts
            )
            served(event, candidate, ledger.attempts, streamed=False)
            event.tokens = completion.usage
            event.cost_usd = candidate.entry.cost(completion.usage)
            completion.payload["model"] = candidate.entry.model_id
    except GatewayError as error:
        return _failed(error, work)
    return CompletionOutcome(status_code=200, body=completion.payload, usage=completion.usage)


def _failed(error: GatewayError, work: CompletionWork) -> CompletionOutcome:
    return CompletionOutcome(status_code=error.http_status, body=dict(error.envelope(work.request_id)))


async def cancelled_job_record(work: CompletionWork) -> CompletionOutcome:
    """A job cancelled before it ran: give back its hard-cap hold and write its one ledger entry."""
    key = work.key
    event = UsageEventData(
        request_id=work.request_id,
        tenant_id=key.tenant_id,
        key_id=key.key_id,
        model_requested=str(work.body.get("model") or ""),
        started_at=time.time(),
        session_id=work.body.get("session_id") if isinstance(work.body.get("session_id"), str) else None,
        http_status=499,
        error_code="job_cancelled",
        cancelled=True,
    )
    await spend_add(key=key, cost_usd=event.cost_usd, at=event.started_at, request_id=work.request_id)
    await usage_record(event=event)
    return CompletionOutcome(status_code=499, body={})
