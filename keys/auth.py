"""Authenticating a bearer token on the hot path: Redis first, the database on a miss."""

from __future__ import annotations

import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from keys import cache
from keys.cache import UNKNOWN, cache_key, generation_key, key_cache_fill, key_cache_get
from keys.limits import (
    UNLIMITED,
    AdmitReply,
    RateLimitState,
    admit_run,
    rate_limit_check,
    rate_limit_verdict,
    rate_limits_unavailable,
)
from keys.selectors import api_key_get_by_hash
from keys.tokens import token_hash, token_is_well_formed
from keys.types import ResolvedKey
from meshplatform.db import db_call
from meshplatform.errors import GatewayError, RateLimited, Unauthorized
from meshplatform.redis import REDIS_UNAVAILABLE

_load_key = db_call(api_key_get_by_hash)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer rsk_…'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Malformed Authorization header; expected 'Bearer rsk_…'.")
    if not token_is_well_formed(token):
        raise Unauthorized("Malformed API key; keys look like 'rsk_' followed by 26 characters.")
    return token


def _usable(key: ResolvedKey | None) -> ResolvedKey:
    """The one refusal of every entry point: 401 for no such key, 403 when revoked, expired or of a
    suspended tenant."""
    if key is None:
        raise Unauthorized("Invalid API key.")
    key.ensure_usable()
    return key


async def _load_and_fill(digest: str, generation: str | None) -> ResolvedKey | None:
    """The database's answer on a cache miss, cached unless the key changed since `generation`
    was read (None: Redis could not be read, so nothing is written back)."""
    key = await _load_key(key_hash=digest)
    if generation is not None:
        await key_cache_fill(digest, key, generation=generation)
    return key


async def api_key_authenticate(*, authorization: str | None) -> ResolvedKey:
    """The key behind `authorization`, without counting it against its rate limits (GET /v1/models)."""
    digest = token_hash(bearer_token(authorization))
    cached = await key_cache_get(digest)
    if cached.known_missing:
        return _usable(None)
    return _usable(cached.key if cached.hit else await _load_and_fill(digest, cached.generation))


@dataclass(frozen=True, slots=True)
class Admission:
    """A key that authenticated, with its rate-limit verdict (counted in the same round trip)."""

    key: ResolvedKey
    limits: RateLimitState
    refusal: RateLimited | None = None

    def rate_limit(self) -> RateLimitState:
        """The x-ratelimit-* state, or the 429 (raised where the caller records the request)."""
        if self.refusal is not None:
            raise self.refusal
        return self.limits

    @contextmanager
    def verdict(self) -> Iterator[RateLimitState]:
        """Around a request's steps: its rate-limit verdict (the 429 raised here), whose
        x-ratelimit-* headers every later error carries too."""
        limits = self.rate_limit()
        try:
            yield limits
        except GatewayError as error:
            error.extra_headers.update(limits.headers())
            raise


async def api_key_admit(*, authorization: str | None) -> Admission:
    """api_key_authenticate and the RPM/RPD count in one Redis round trip for a cached key.

    401 when unknown, 403 when revoked/expired/suspended; a 429 is carried in the Admission
    so the caller can record the refused request. A cache miss costs the database read, the
    cache fill and a separate count; a Redis outage falls back to the database and the
    fail-open/closed policy for limits.
    """
    digest = token_hash(bearer_token(authorization))
    try:
        reply = await admit_run(
            key_hash=digest, cache_names=[cache_key(digest), generation_key(digest)], now=time.time()
        )
    except REDIS_UNAVAILABLE as error:
        cache.outage.failed(error)
        key = _usable(await _load_key(key_hash=digest))
        return await _admitted(key, _unavailable(error))
    cache.outage.recovered()
    if reply.entry is None:  # a miss: the database, the cache fill, then a separate count
        key = _usable(await _load_and_fill(digest, reply.generation))
        return await _admitted(key, rate_limit_check(key=key, key_hash=digest))
    key = _usable(None if reply.entry == UNKNOWN else ResolvedKey.from_json(orjson.loads(reply.entry)))
    return await _admitted(key, _verdict(key, reply))


async def _admitted(key: ResolvedKey, count: Coroutine[Any, Any, RateLimitState]) -> Admission:
    try:
        return Admission(key=key, limits=await count)
    except RateLimited as refusal:
        return Admission(key=key, limits=UNLIMITED, refusal=refusal)


async def _verdict(key: ResolvedKey, reply: AdmitReply) -> RateLimitState:
    return rate_limit_verdict(key, reply)


async def _unavailable(error: Exception) -> RateLimitState:
    return rate_limits_unavailable(error)


def api_key_authenticate_sync(*, authorization: str | None) -> ResolvedKey:
    """The same check for sync code (DRF management APIs); reads the database directly."""
    return _usable(api_key_get_by_hash(key_hash=token_hash(bearer_token(authorization))))
