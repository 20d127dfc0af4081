"""The pipeline off the request path: a job or a batch line runs `routing.pipeline.chat_completion`,
the same call as POST /v1/chat/completions (limits, caps, template, model, fallback, billing,
one usage event), with no HttpRequest. Jobs were admitted at submission; batch lines here."""

from __future__ import annotations

import contextlib

import orjson
from redis.exceptions import RedisError

from jobs.types import CompletionOutcome, CompletionWork
from keys.auth import Admission
from keys.limits import UNLIMITED, rate_limit_check
from meshplatform.errors import BadRequest, Forbidden, GatewayError, RateLimited
from meshplatform.redis import get_redis
from routing.pipeline import ChatCompletionResult, chat_completion, request_refused
from routing.schema import ChatCompletionRequest, validate_chat_request
from usage.ledger import LedgerEntry
from usage.types import TokenUsage

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


async def _completion_run(work: CompletionWork) -> CompletionOutcome:
    if not work.admitted:
        try:
            work.key.ensure_usable()  # a batch line of a key revoked since: refused and recorded
        except Forbidden as refusal:
            return await _refused(Admission(key=work.key, limits=UNLIMITED), work, refusal)
    try:
        admission = await _admission(work)
    except RateLimited as refusal:  # not yet a request: the batch waits for the window
        return CompletionOutcome(
            status_code=429,
            body=dict(refusal.envelope(work.request_id)),
            retry_after_s=float(refusal.retry_after_seconds or 1),
        )
    try:
        chat = _chat_of(work)
    except GatewayError as error:
        return await _refused(admission, work, error)
    try:
        result = await chat_completion(
            admission=admission,
            chat=chat,
            request_id=work.request_id,
            accepted=work.admitted,
            started_at=work.started_at,
        )
    except GatewayError as error:
        return _failed(error, work)
    assert isinstance(result, ChatCompletionResult)  # no stream, no async_mode: refused above
    return CompletionOutcome(status_code=200, body=result.payload, usage=result.usage)


async def _admission(work: CompletionWork) -> Admission:
    """A job was counted at submission; a batch line counts against the key's RPM/RPD now."""
    if work.admitted:
        return Admission(key=work.key, limits=UNLIMITED)
    return Admission(key=work.key, limits=await rate_limit_check(key=work.key, key_hash=work.key_hash))


async def _refused(admission: Admission, work: CompletionWork, error: GatewayError) -> CompletionOutcome:
    """A line that is no valid request: recorded like the view records one (its one event)."""
    try:
        await request_refused(
            admission=admission,
            request_id=work.request_id,
            error=error,
            session_id=_session_of(work),
            started_at=work.started_at,
        )
    except GatewayError as recorded:
        return _failed(recorded, work)


def _session_of(work: CompletionWork) -> str | None:
    given = work.body.get("session_id")
    return given if isinstance(given, str) else work.default_session_id


def _chat_of(work: CompletionWork) -> ChatCompletionRequest:
    body = dict(work.body)
    if work.default_session_id is not None and body.get("session_id") is None:
        body["session_id"] = work.default_session_id  # a batch line is billed under its batch
    chat = validate_chat_request(body)
    if chat.stream or chat.async_mode:
        raise BadRequest("stream and async_mode are not available in async jobs and batches.", param="stream")
    return chat


def _failed(error: GatewayError, work: CompletionWork) -> CompletionOutcome:
    return CompletionOutcome(status_code=error.http_status, body=dict(error.envelope(work.request_id)))


async def cancelled_job_record(work: CompletionWork) -> CompletionOutcome:
    """A job cancelled before it ran: its one ledger entry (nothing billed), which also gives back
    the hard-cap hold its submission took."""
    entry = LedgerEntry(
        key=work.key, request_id=work.request_id, session_id=_session_of(work), started_at=work.started_at
    )
    model = work.body.get("model")
    entry.model_asked(model if isinstance(model, str) else "")
    await entry.failed(status=499, code="job_cancelled", cancelled=True)
    return CompletionOutcome(status_code=499, body={})


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
