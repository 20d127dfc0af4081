"""`Idempotency-Key` on the POSTs that bill: a retried request (same API key, endpoint, header and
body) is answered with the first one's answer instead of being run, and billed, a second time.

Why. A client that lost its connection cannot tell whether its request ran; retrying (as the
`meshapi` SDK and most clients do on connection errors and 5xx) could bill it twice. With the
header, the first arrival claims the key in Redis, in the same pipelined batch as admission (no
extra round trip). How the request ends decides what a retry gets:
- a JSON 200/202: kept for MESH_IDEMPOTENCY_TTL_S and replayed (`Idempotent-Replayed: true`);
- anything that billed without such an answer (a stream, however it ended; a client gone after
  the answer was billed; an answer too large to keep): "ran", and a retry gets 409
  `idempotency_key_used` naming the first request;
- an error that billed nothing: released, so a retry runs anew.
While the first still runs, a retry gets 409 `idempotency_in_progress` with Retry-After (the SDK
waits and retries). The same header with another body is a 422. Every write after the claim
checks that the key is still this request's, so a request cannot undo another's claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypedDict

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from redis.exceptions import RedisError

from keys.auth import Admission, api_key_admit, bearer_token
from keys.tokens import token_hash
from meshplatform import tracing
from meshplatform.errors import BadRequest, Conflict, GatewayError
from meshplatform.event_stream import EventStreamResponse
from meshplatform.redis_scripts import RedisScript
from meshplatform.request_ids import request_id_of
from routing.pipeline import request_refused, request_replayed
from usage.ledger import billing_witnessed

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
META_HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces: what clients send
_PENDING, _DONE, _RAN = "pending", "done", "ran"
_REPLAYED_HEADERS = ("Location",)  # the headers of a kept answer that belong to it (a 202's job)

# Claim the key unless it is taken: the current value, or nothing when this call claimed it.
_CLAIM = RedisScript(
    """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
)
# Settle the key if it is still this request's (its value starts with ARGV[1], "<request id>\n")
# or gone: replace it with ARGV[2] for ARGV[3] seconds, or delete it when ARGV[2] is empty.
_SETTLE = RedisScript(
    """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, string.len(ARGV[1])) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""
)


class StoredHead(TypedDict):
    """The JSON line after the request id in a key's value: its state and, when kept, the answer's
    status and headers (the body follows on the next line)."""

    state: str
    fp: str
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class StoredAnswer:
    """An earlier request's kept answer, to replay."""

    status: int
    body: bytes
    request_id: str
    headers: dict[str, str]


class IdempotencyClaim:
    """A request's claim on its Idempotency-Key, settled once: kept, marked as run, or released."""

    __slots__ = ("_settled", "fingerprint", "name", "request_id")

    def __init__(self, name: str, *, fingerprint: str, request_id: str) -> None:
        self.name = name  # its Redis key
        self._settled = False
        self.fingerprint = fingerprint
        self.request_id = request_id

    def value(self, state: str, *, status: int = 0, headers: dict[str, str] | None = None) -> bytes:
        """The key's value: "<request id>" line, the head line, then a kept answer's body."""
        head: StoredHead = {
            "state": state,
            "fp": self.fingerprint,
            "status": status,
            "headers": headers or {},
        }
        return self.request_id.encode() + b"\n" + orjson.dumps(head) + b"\n"

    async def answered(self, response: HttpResponseBase) -> HttpResponseBase:
        """Keep a JSON 200/202 for retries; a stream is marked as run once it is over (it billed
        from its first chunk, however it ends). Returns the response to send."""
        if isinstance(response, EventStreamResponse):
            response.on_close = self._after_stream(response.on_close)
        elif isinstance(response, HttpResponse) and response.status_code in (200, 202):
            body = response.content
            if len(body) > settings.MESH_IDEMPOTENCY_MAX_BYTES:
                await self.ran()
            else:
                headers = {name: response[name] for name in _REPLAYED_HEADERS if name in response}
                await self._settle(self.value(_DONE, status=response.status_code, headers=headers) + body)
        else:
            await self.release()
        return response

    async def ran(self) -> None:
        """It billed without an answer to keep: a retry is told it ran."""
        await self._settle(self.value(_RAN))

    async def release(self) -> None:
        """It billed nothing: a retry runs it anew."""
        await self._settle(b"")

    def _after_stream(self, close: Callable[[], Awaitable[None]] | None) -> Callable[[], Awaitable[None]]:
        async def on_close() -> None:
            try:
                if close is not None:
                    await close()
            finally:
                await self.ran()

        return on_close

    async def _settle(self, value: bytes) -> None:
        if self._settled:
            return
        self._settled = True
        owner = self.request_id.encode() + b"\n"
        ttl = settings.MESH_IDEMPOTENCY_TTL_S
        try:
            await _SETTLE.run_batched([self.name], [owner, value, ttl])
        except RedisError:  # the claim lapses with its pending TTL; never fail the answer for it
            logger.warning("could not settle the Idempotency-Key of %s", self.request_id, exc_info=True)


Claimed = IdempotencyClaim | StoredAnswer | None  # None: no header


async def idempotency_admit(
    request: HttpRequest, *, request_id: str, endpoint: str
) -> tuple[Admission, Claimed]:
    """Admission (as `api_key_admit`) and, when the request carries an Idempotency-Key, its claim,
    side by side in one pipelined round trip: this request's claim, or the stored answer of the
    earlier request with that key. A reused key (409, 422) is refused and recorded as such."""
    # From META: `request.headers` builds a mapping of every header on first use, for two reads.
    authorization = request.META.get("HTTP_AUTHORIZATION")
    idempotency_key = request.META.get(META_HEADER)
    if idempotency_key is None:
        return await api_key_admit(authorization=authorization), None
    if not _KEY_SHAPE.fullmatch(idempotency_key):
        error = BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters, no spaces.", param=HEADER)
        admission = await api_key_admit(authorization=authorization)
        await request_refused(admission=admission, request_id=request_id, error=error, endpoint=endpoint)
    # Hashed: a fixed length, and no `{…}` of the client's choosing picks a Redis Cluster slot.
    scope = f"{token_hash(bearer_token(authorization))}:{endpoint}"
    name = f"mesh:idem:{scope}:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
    claim = IdempotencyClaim(
        name, fingerprint=hashlib.sha256(request.body).hexdigest(), request_id=request_id
    )
    try:
        admitted, claimed = await asyncio.gather(
            api_key_admit(authorization=authorization), _claim(claim), return_exceptions=True
        )
    except BaseException:  # cancelled with both in flight: the claim may stand, release it
        await claim.release()
        raise
    if isinstance(claimed, RedisError):
        # Unknown whether it was claimed: the request runs, and its settling (owner-checked, and
        # filling a key that is absent) keeps its answer for retries all the same.
        logger.warning("Idempotency-Key of %s not checked: %s", request_id, claimed)
        claimed = claim
    if isinstance(admitted, BaseException):
        if claimed is claim:
            await claim.release()
        raise admitted
    if isinstance(claimed, GatewayError):
        await request_refused(admission=admitted, request_id=request_id, error=claimed, endpoint=endpoint)
    if isinstance(claimed, BaseException):
        raise claimed
    return admitted, claimed


async def _claim(claim: IdempotencyClaim) -> IdempotencyClaim | StoredAnswer:
    """`claim` when this request claimed the key; else the stored answer, or a 409/422."""
    pending = claim.value(_PENDING)
    current = await _CLAIM.run_batched([claim.name], [pending, settings.MESH_IDEMPOTENCY_PENDING_S])
    if not current:
        return claim
    owner, head, body = _parsed(bytes(current))
    if head is None:
        raise Conflict(
            f"The request with this {HEADER} cannot be told apart from an earlier one whose record is "
            "unreadable; use a new key for a new request.",
            param=HEADER,
            code="idempotency_key_used",
        )
    if head["fp"] != claim.fingerprint:
        raise BadRequest(
            f"This {HEADER} was used with a different request body (request {owner}); "
            "use a new key for a new request.",
            param=HEADER,
        )
    if head["state"] == _PENDING:
        raise Conflict(
            f"A request with this {HEADER} is still running (request {owner}); retry once it has answered.",
            param=HEADER,
            retry_after_seconds=1,
            code="idempotency_in_progress",
        )
    if head["state"] == _DONE:
        return StoredAnswer(status=head["status"], body=body, request_id=owner, headers=head["headers"])
    raise Conflict(
        f"The request with this {HEADER} already ran and was billed (request {owner}); its answer (a "
        "stream, or one too large to keep) cannot be replayed. Use a new key for a new request.",
        param=HEADER,
        code="idempotency_key_used",
    )


def _parsed(value: bytes) -> tuple[str, StoredHead | None, bytes]:
    """The owner's request id, the head (None when unreadable: another release's format) and body."""
    owner, _, rest = value.partition(b"\n")
    line, _, body = rest.partition(b"\n")
    try:
        head = orjson.loads(line)
        valid = (
            isinstance(head, dict)
            and isinstance(head.get("state"), str)
            and isinstance(head.get("fp"), str)
            and isinstance(head.get("status"), int)
            and isinstance(head.get("headers"), dict)
            and all(isinstance(v, str) for v in head["headers"].values())
        )
    except orjson.JSONDecodeError:
        valid = False
    return owner.decode("ascii", "replace"), head if valid else None, body


AdmittedView = Callable[[HttpRequest, Admission], Coroutine[Any, Any, HttpResponseBase]]
View = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponseBase]]


def idempotent(endpoint: str) -> Callable[[AdmittedView], View]:
    """A billing POST view, given its admission, under the request's Idempotency-Key: a retry of
    an answered request gets the stored answer; a request that fails releases the key unless it
    billed (then a retry is told it ran)."""

    def decorate(view: AdmittedView) -> View:
        @wraps(view)
        async def wrapper(request: HttpRequest) -> HttpResponseBase:
            request_id = request_id_of(request)
            with tracing.span("mesh.auth"):
                admission, claimed = await idempotency_admit(
                    request, request_id=request_id, endpoint=endpoint
                )
            if claimed is None:
                return await view(request, admission)
            if isinstance(claimed, StoredAnswer):
                await request_replayed(
                    admission=admission, request_id=request_id, status=claimed.status, endpoint=endpoint
                )
                return replay_response(claimed)
            with billing_witnessed() as witness:
                try:
                    response = await view(request, admission)
                except BaseException:
                    await (claimed.ran() if witness.billed else claimed.release())
                    raise
            return await claimed.answered(response)

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


# The header as the OpenAPI document of each idempotent operation lists it.
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Any unique string (e.g. a UUID; 1-255 printable ASCII characters). A retry with the same "
        "key and body gets the first answer (marked `Idempotent-Replayed: true`) instead of running "
        "and billing again; 409 while the first still runs, or when it ran without an answer to "
        "replay (a stream); 422 with another body. Answers are kept for MESH_IDEMPOTENCY_TTL_S."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}
