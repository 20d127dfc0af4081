"""Authenticating a bearer token on the hot path: Redis first, the database on a miss."""

from __future__ import annotations

from keys.cache import key_cache_fill, key_cache_get
from keys.selectors import api_key_get_by_hash
from keys.tokens import token_hash, token_is_well_formed
from keys.types import ResolvedKey
from meshplatform.db import db_call
from meshplatform.errors import Unauthorized

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


async def api_key_authenticate(*, authorization: str | None) -> ResolvedKey:
    """The key behind `authorization`: 401 when unknown, 403 when revoked/expired/suspended."""
    token = bearer_token(authorization)
    digest = token_hash(token)
    cached = await key_cache_get(digest)
    if cached.known_missing:
        raise Unauthorized("Invalid API key.")
    key = cached.key
    if not cached.hit:
        key = await _load_key(key_hash=digest)
        if cached.generation is not None:
            await key_cache_fill(digest, key, generation=cached.generation)
    if key is None:
        raise Unauthorized("Invalid API key.")
    key.ensure_usable()
    return key


def api_key_authenticate_sync(*, authorization: str | None) -> ResolvedKey:
    """The same check for sync code (DRF management APIs); reads the database directly."""
    token = bearer_token(authorization)
    digest = token_hash(token)
    key = api_key_get_by_hash(key_hash=digest)
    if key is None:
        raise Unauthorized("Invalid API key.")
    key.ensure_usable()
    return key
