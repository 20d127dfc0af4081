"""`RedisScript`: a Lua script run by SHA (EVALSHA), loaded on first use or after a Redis restart;
async, auto-pipelined (`run_batched`) or sync."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from meshplatform.redis import AsyncRedis, SyncRedis
from meshplatform.redis_batch import redis_batched

Arg = str | int | float | bytes


class RedisScript:
    """One Lua script: EVALSHA every call (the body crosses the wire once per server, not per request).

    Each way of running it loads the script before its first use in this process, so NOSCRIPT only
    follows a Redis restart: some Redis-compatible servers (the embedded one `make run` uses among
    them) answer it by dropping the connection, and with it whatever else was in flight there.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.loaded = False

    async def run(self, redis: AsyncRedis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if not self.loaded:
            await redis.script_load(self.source)
            self.loaded = True
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)  # Redis restarted or flushed its script cache
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    async def run_batched(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """`run` in a pipeline shared with concurrent commands (the hot path's scripts: a request's
        billing travels with its ledger write)."""
        if not self.loaded:
            await redis_batched("SCRIPT", "LOAD", self.source)
            self.loaded = True
        try:
            return await redis_batched("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis_batched("SCRIPT", "LOAD", self.source)
            return await redis_batched("EVALSHA", self.sha, len(keys), *keys, *args)

    def run_sync(self, redis: SyncRedis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if not self.loaded:
            redis.script_load(self.source)
            self.loaded = True
        try:
            return redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            redis.script_load(self.source)
            return redis.evalsha(self.sha, len(keys), *keys, *args)
