"""A real local Redis Cluster (3 primaries on loopback) for the cluster-mode tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_cluster import RedisClusterServers


@pytest.fixture(scope="session")
def redis_cluster_servers() -> Iterator[RedisClusterServers]:
    with RedisClusterServers() as servers:
        yield servers


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisClusterServers) -> RedisClusterServers:
    """The cluster, emptied for this test (slots stay where earlier tests moved them)."""
    redis_cluster_servers.flushall()
    return redis_cluster_servers
