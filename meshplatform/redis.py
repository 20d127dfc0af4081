"""The shared Redis clients (one async pool per event loop; real Redis, a Redis Cluster or embedded
fakeredis) and the one policy for Redis being unavailable.

Every module that can serve without Redis catches `REDIS_UNAVAILABLE` (Redis could not be
reached or did not answer in time), logs through its `OutageLog` and falls back. Anything else
is a bug and propagates (a 500, recorded in the ledger like any other failure), never
mistaken for an outage: a command Redis refused (`ResponseError`: a wrong type, a script
error) or a bug in our own cache code.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis as sync_redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis import exceptions as redis_errors

from meshplatform.loops import LoopLocal

logger = logging.getLogger(__name__)

# Redis could not be reached, dropped the connection, timed out, or cannot serve writes right now
# (a replica during failover, a cluster without its primary): an outage, not a bug.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.MasterDownError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    OSError,
)

# In cluster mode (REDIS_CLUSTER) the clients are redis-py's RedisCluster, which routes each
# command to the node owning its key's slot; every key one command or script touches shares a
# hash tag, so none spans two slots.
AsyncRedis = aioredis.Redis | aioredis.RedisCluster
SyncRedis = sync_redis.Redis | sync_redis.RedisCluster

_sync_client: SyncRedis | None = None
_embedded_server: Any = None


def _embedded() -> Any:
    """One fakeredis server per process, shared by the async and sync clients."""
    global _embedded_server
    if _embedded_server is None:
        import fakeredis

        _embedded_server = fakeredis.FakeServer()
    return _embedded_server


def _new_client() -> AsyncRedis:
    if settings.REDIS_CLUSTER:
        return aioredis.RedisCluster.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_MAX_CONNECTIONS,  # per node
            socket_connect_timeout=1.0,
            socket_timeout=settings.REDIS_COMMAND_TIMEOUT_S,
        )
    if not settings.REDIS_URL:
        import fakeredis  # requirements-embedded.txt (untyped where it is not installed)

        embedded: aioredis.Redis = fakeredis.FakeAsyncRedis(server=_embedded())
        return embedded
    # A burst of requests waits for a pooled connection (backpressure) instead of failing
    # with "Too many connections", which the callers would take for a Redis outage.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=settings.REDIS_POOL_TIMEOUT_S,
        socket_connect_timeout=1.0,
        socket_timeout=settings.REDIS_COMMAND_TIMEOUT_S,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


_clients = LoopLocal(_new_client)


def get_redis() -> AsyncRedis:
    """The client for the running event loop (pools cannot cross loops)."""
    return _clients.get()


def get_sync_redis() -> SyncRedis:
    """For sync code (admin, services, Celery tasks)."""
    global _sync_client
    if _sync_client is None:
        if settings.REDIS_CLUSTER:
            _sync_client = sync_redis.RedisCluster.from_url(
                settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0
            )
        elif settings.REDIS_URL:
            _sync_client = sync_redis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0
            )
        else:
            import fakeredis

            _sync_client = fakeredis.FakeRedis(server=_embedded())
    return _sync_client


@receiver(setting_changed)
def _redis_setting_changed(*, setting: str, **_: Any) -> None:
    """A test pointing the process at another Redis (override_settings) gets clients for it."""
    global _sync_client, _clients
    if setting in ("REDIS_URL", "REDIS_CLUSTER"):
        _sync_client = None
        _clients = LoopLocal(_new_client)


class OutageLog:
    """Logs a Redis outage once when it starts and once when it ends, not per request; one per
    subsystem that falls back (the log says what runs without Redis)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.down_since: float | None = None

    def failed(self, error: Exception) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning("Redis unavailable for %s (%s); continuing without it", self.what, error)

    def recovered(self) -> None:
        if self.down_since is not None:
            logger.warning("Redis back for %s after %.1fs", self.what, time.monotonic() - self.down_since)
            self.down_since = None
