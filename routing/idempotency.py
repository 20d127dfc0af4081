"""`Idempotency-Key` on the POSTs that bill: a retried request (same key, same header, same body)
is answered with the first one's answer instead of being run, and billed, a second time.

Why. A client that lost the connection cannot tell whether its request ran; retrying (as the
`meshapi` SDK and most clients do on connection errors and 5xx) could bill it twice. With the
header, the first arrival claims the key in Redis (in the same pipelined batch as admission, so
no extra round trip); its answer (a JSON 200 or 202) is kept for MESH_IDEMPOTENCY_TTL_S and
replayed to retries, marked `Idempotent-Replayed: true`. While the first is still running, a
retry gets 409 with Retry-After. A failure (any error, a cut stream) releases the claim, so a
retry runs anew: errors bill nothing, so running them again cannot bill twice. A stream that
completed cannot be replayed: a retry of it gets 409 naming the first request. The same header
with a different body is a 422 (the client reused a key by mistake).

Scope: the API key (by its hash), so two keys, let alone two tenants, never share answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from keys.auth import Admission, api_key_admit, bearer_token
from keys.tokens import token_hash
from meshplatform import tracing
from meshplatform.errors import BadRequest, Conflict, GatewayError
from meshplatform.event_stream import EventStreamResponse
from meshplatform.redis_batch import redis_batched
from meshplatform.redis_scripts import RedisScript
from meshplatform.request_ids import request_id_of
from routing.pipeline import request_refused, request_replayed

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces: what clients send
_PENDING, _DONE, _RAN = "pending", "done", "ran"  # _RAN: ran, its answer not kept (a stream, too large)
_REPLAYED_HEADERS = ("Location",)  # the headers of a stored answer that belong to it (202's job)

# Claim the key unless someone has: returns the current value, or nothing when this call claimed it.
_CLAIM = RedisScript(
    """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
)


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: bytes
    request_id: str
    headers: dict[str, str]


class Once:
    """A request's claim on its Idempotency-Key (or, without the header, a claim that does
    nothing): settled exactly once, by keeping the answer or by releasing the key."""

    __slots__ = ("_name", "_settled", "fingerprint", "request_id")

    def __init__(self, name: str | None, *, fingerprint: str = "", request_id: str = "") -> None:
        self._name = name
        self._settled = name is None
        self.fingerprint = fingerprint
        self.request_id = request_id

    async def answered(self, response: HttpResponseBase) -> HttpResponseBase:
        """Keep a JSON 200/202 for retries; a stream is marked once it completes, released if cut.
        Returns the response to send."""
        if self._settled:
            return response
        if isinstance(response, EventStreamResponse):
            response.on_close = self._after_stream(response)
        elif isinstance(response, HttpResponse) and response.status_code in (200, 202):
            await self._keep(response)
        else:
            await self.abandon()
        return response

    async def abandon(self) -> None:
        """The request failed: a retry runs it anew (an error billed nothing)."""
        if self._settled:
            return
        self._settled = True
        try:
            await redis_batched("DEL", self._name)
        except Exception:  # the claim then expires with its pending TTL; never fail the answer for it
            logger.warning("could not release the Idempotency-Key of %s", self.request_id, exc_info=True)

    async def _keep(self, response: HttpResponse) -> None:
        self._settled = True
        body = response.content
        if len(body) > settings.MESH_IDEMPOTENCY_MAX_BYTES:
            record = self.record(_RAN)  # too large to keep: retries are told it ran
        else:
            headers = {name: response[name] for name in _REPLAYED_HEADERS if name in response}
            record = self.record(_DONE, status=response.status_code, headers=headers) + body
        await self._set(record)

    def _after_stream(self, response: EventStreamResponse) -> Callable[[], Awaitable[None]]:
        close, completed = response.on_close, response.completed

        async def on_close() -> None:
            if close is not None:
                await close()
            if completed is not None and completed():
                self._settled = True
                await self._set(self.record(_RAN))
            else:
                await self.abandon()

        return on_close

    def record(self, state: str, *, status: int = 0, headers: dict[str, str] | None = None) -> bytes:
        """What Redis holds for the key: one JSON line, then the answer's body when it is kept."""
        head = {"state": state, "fp": self.fingerprint, "rid": self.request_id, "status": status}
        return orjson.dumps({**head, "headers": headers or {}}) + b"\n"

    async def _set(self, record: bytes) -> None:
        try:
            await redis_batched("SET", self._name, record, "EX", settings.MESH_IDEMPOTENCY_TTL_S)
        except Exception:  # the answer still goes out; a retry then finds the pending claim (409)
            logger.warning("could not keep the Idempotency-Key answer of %s", self.request_id, exc_info=True)


NOT_IDEMPOTENT = Once(None)

# The header as the OpenAPI document of each idempotent operation lists it.
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Any unique string (e.g. a UUID; 1-255 printable ASCII characters). A retry with the same "
        "key and body gets the first answer (marked `Idempotent-Replayed: true`) instead of running "
        "and billing again; 409 while the first still runs or when it was a stream; 422 with "
        "another body. Answers are kept for MESH_IDEMPOTENCY_TTL_S (default 24 h)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}
Claimed = Once | StoredAnswer


async def admit_once(request: HttpRequest, *, request_id: str, endpoint: str) -> tuple[Admission, Claimed]:
    """Admission (as `api_key_admit`) and, when the request carries an Idempotency-Key, its claim,
    side by side in one pipelined round trip: the request's `Once`, or the stored answer of the
    earlier request with that key. A reused key (409, 422) is refused and recorded as such."""
    authorization = request.headers.get("Authorization")
    idempotency_key = request.headers.get(HEADER)
    if idempotency_key is None:
        return await api_key_admit(authorization=authorization), NOT_IDEMPOTENT
    if not _KEY_SHAPE.fullmatch(idempotency_key):
        error = BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters, no spaces.", param=HEADER)
        admission = await api_key_admit(authorization=authorization)
        await request_refused(admission=admission, request_id=request_id, error=error, endpoint=endpoint)
    name = f"mesh:idem:{token_hash(bearer_token(authorization))}:{idempotency_key}"
    once = Once(name, fingerprint=hashlib.sha256(request.body).hexdigest(), request_id=request_id)
    admitted, claimed = await asyncio.gather(
        api_key_admit(authorization=authorization), _claim(once, name), return_exceptions=True
    )
    if isinstance(claimed, Exception) and not isinstance(claimed, GatewayError):
        # Redis could not answer: admission has its own fallback; the request runs unguarded.
        logger.warning("Idempotency-Key of %s not checked: %s", request_id, claimed)
        claimed = NOT_IDEMPOTENT
    if isinstance(admitted, BaseException):
        if isinstance(claimed, Once):
            await claimed.abandon()
        raise admitted
    if isinstance(claimed, GatewayError):
        await request_refused(admission=admitted, request_id=request_id, error=claimed, endpoint=endpoint)
    if isinstance(claimed, BaseException):
        raise claimed
    return admitted, claimed


async def _claim(once: Once, name: str) -> Claimed:
    """`once` when this request claimed the key; else the stored answer, or a 409/422."""
    pending = once.record(_PENDING)
    current = await _CLAIM.run_batched([name], [pending, settings.MESH_IDEMPOTENCY_PENDING_S])
    if not current:
        return once
    head, _, body = bytes(current).partition(b"\n")
    record = orjson.loads(head)
    if record["fp"] != once.fingerprint:
        raise BadRequest(
            f"This {HEADER} was used with a different request body (request {record['rid']}); "
            "use a new key for a new request.",
            param=HEADER,
        )
    if record["state"] == _PENDING:
        raise Conflict(
            f"A request with this {HEADER} is still running (request {record['rid']}); "
            "retry once it has answered.",
            param=HEADER,
            retry_after_seconds=1,
            code="idempotency_in_progress",
        )
    if record["state"] == _RAN:
        raise Conflict(
            f"The request with this {HEADER} already ran (request {record['rid']}) and its answer "
            "(a stream, or too large to keep) cannot be replayed; use a new key for a new request.",
            param=HEADER,
            code="idempotency_key_used",
        )
    return StoredAnswer(
        status=record["status"], body=body, request_id=record["rid"], headers=record["headers"]
    )


AdmittedView = Callable[[HttpRequest, Admission], Coroutine[Any, Any, HttpResponseBase]]
View = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponseBase]]


def idempotent(endpoint: str) -> Callable[[AdmittedView], View]:
    """A billing POST view, given its admission, under the request's Idempotency-Key: a retry of
    an answered request gets the stored answer; whatever the view raises releases the key."""

    def decorate(view: AdmittedView) -> View:
        @wraps(view)
        async def wrapper(request: HttpRequest) -> HttpResponseBase:
            request_id = request_id_of(request)
            with tracing.span("mesh.auth"):
                admission, once = await admit_once(request, request_id=request_id, endpoint=endpoint)
            if isinstance(once, StoredAnswer):
                await request_replayed(
                    admission=admission, request_id=request_id, status=once.status, endpoint=endpoint
                )
                return replay_response(once)
            try:
                response = await view(request, admission)
            except BaseException:
                await once.abandon()
                raise
            return await once.answered(response)

        return wrapper

    return decorate


def replay_response(answer: StoredAnswer) -> HttpResponse:
    """The stored answer, marked as a replay and naming the request that produced it."""
    response = HttpResponse(answer.body, content_type="application/json", status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    response["X-Mesh-Original-Request-Id"] = answer.request_id
    return response
