"""Auto-pipelining on a real Redis Cluster: batches split per node (one round trip each), replies
back to their callers, MOVED and ASK followed exactly once, a silent node failing only its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from django.test import override_settings
from redis.crc import key_slot
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshplatform.redis import get_redis, get_sync_redis
from meshplatform.redis_cluster_batch import (
    EVERY_PRIMARY,
    ClusterCommandBatcher,
    UnroutableCommand,
    command_route,
)
from meshplatform.redis_scripts import RedisScript
from tests.support.redis_cluster import RedisClusterServers

COUNT = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")


async def count(batcher: ClusterCommandBatcher, key: str, by: int) -> Any:
    """The COUNT script through `batcher` (loaded on every primary first)."""
    await batcher.submit(("SCRIPT", "LOAD", COUNT.source))
    return await batcher.submit(("EVALSHA", COUNT.sha, 1, key, by))


def keys_by_node(cluster: RedisClusterServers, per_node: int) -> dict[int, list[str]]:
    """`per_node` keys (each its own hash tag) owned by each primary, by port."""
    found: dict[int, list[str]] = {port: [] for port in cluster.ports}
    index = 0
    while any(len(keys) < per_node for keys in found.values()):
        key = f"{{t{index}}}:n"
        owner = cluster.owner(key_slot(key.encode()))
        if len(found[owner]) < per_node:
            found[owner].append(key)
        index += 1
    return found


def test_each_command_is_routed_to_the_slot_the_server_computes(
    redis_cluster: RedisClusterServers,
) -> None:
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", "0" * 40, 2, "{mesh:key:abc}:v2", "{mesh:key:abc}:gen", 1),
        ("EVAL", "return 1", 1, "mesh:tpl:{7}", "x"),
        ("HSET", "{mesh:usage}:open", "r1", "v"),
        ("XADD", "{mesh:usage}:events", "*", "e", "payload"),
        ("MGET", "{mesh:spend:3}:t:all", "{mesh:spend:3}:k:9:all"),
        ("GET", "mesh:catalog:version"),
        ("INCR", b"plain-bytes-key"),
    ]
    for command in commands:
        key = command[3] if command[0] in ("EVALSHA", "EVAL") else command[1]
        assert command_route(command) == int(
            redis_cluster.command(redis_cluster.ports[0], "CLUSTER", "KEYSLOT", key)
        )
    assert command_route(("SCRIPT", "LOAD", "return 1")) == EVERY_PRIMARY
    for unroutable in [("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"), ("CLIENT", "ID"), ("GET",)]:
        with pytest.raises(UnroutableCommand):
            command_route(unroutable)


def test_a_batch_splits_into_one_round_trip_per_node_and_each_caller_gets_its_reply(
    redis_cluster: RedisClusterServers,
) -> None:
    keys = keys_by_node(redis_cluster, per_node=20)
    everyone = [key for node_keys in keys.values() for key in node_keys]

    async def scenario() -> tuple[list[Any], dict[int, int]]:
        batcher = ClusterCommandBatcher(url=redis_cluster.url)
        await batcher.submit(("PING",))  # learns the slot map
        before = {address[1]: link.batches_sent for address, link in batcher.links.items()}
        replies = await asyncio.gather(
            *(batcher.submit(("INCRBY", key, index + 1)) for index, key in enumerate(everyone))
        )
        sent = {
            address[1]: link.batches_sent - before.get(address[1], 0)
            for address, link in batcher.links.items()
        }
        return replies, sent

    replies, sent = asyncio.run(scenario())
    assert replies == list(range(1, len(everyone) + 1))  # in caller order, each its own
    assert sent == dict.fromkeys(redis_cluster.ports, 1)  # 60 commands, one round trip per node
    for port, node_keys in keys.items():
        node = redis_cluster.node(port)  # each value is on the node that owns its slot
        assert [int(node.get(key) or 0) for key in node_keys] == [everyone.index(k) + 1 for k in node_keys]


def test_script_load_reaches_every_primary_and_scripts_run_on_each(
    redis_cluster: RedisClusterServers,
) -> None:
    keys = keys_by_node(redis_cluster, per_node=1)
    script = RedisScript(f"return redis.call('INCRBY', KEYS[1], ARGV[1]) -- {id(redis_cluster)}")

    async def scenario() -> list[Any]:
        return list(await asyncio.gather(*(script.run_batched([k[0]], [5]) for k in keys.values())))

    with override_settings(REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True):
        assert asyncio.run(scenario()) == [5, 5, 5]
    for port in redis_cluster.ports:
        assert redis_cluster.node(port).script_exists(script.sha) == [True]


def test_moved_after_a_reshard_runs_the_refused_script_once_on_the_new_owner(
    redis_cluster: RedisClusterServers,
) -> None:
    keys = keys_by_node(redis_cluster, per_node=2)
    old_owner, new_owner = redis_cluster.ports[0], redis_cluster.ports[1]
    key, neighbour = keys[old_owner]  # the neighbour's slot stays where it is
    slot = key_slot(key.encode())

    async def scenario() -> tuple[list[Any], int, int]:
        batcher = ClusterCommandBatcher(url=redis_cluster.url)
        assert await count(batcher, key, 10) == 10
        await asyncio.to_thread(redis_cluster.slot_move, slot, new_owner)  # the batcher's map is now stale
        # One batch to the old owner: it refuses the moved key's script (MOVED) and runs the other.
        moved = list(
            await asyncio.gather(
                batcher.submit(("EVALSHA", COUNT.sha, 1, key, 1)),
                batcher.submit(("EVALSHA", COUNT.sha, 1, neighbour, 1)),
            )
        )
        old_batches = batcher.links[("127.0.0.1", old_owner)].batches_sent
        after = await batcher.submit(("EVALSHA", COUNT.sha, 1, key, 1))  # straight to the new owner
        assert batcher.slots is not None
        learned = batcher.slots[slot][1]
        return [*moved, after], learned, batcher.links[("127.0.0.1", old_owner)].batches_sent - old_batches

    replies, learned, old_owner_batches = asyncio.run(scenario())
    assert replies == [11, 1, 12]  # each script counted once per call, never twice
    assert learned == new_owner
    assert old_owner_batches == 0
    assert int(redis_cluster.node(new_owner).get(key) or 0) == 12
    assert int(redis_cluster.node(old_owner).get(neighbour) or 0) == 1


def test_ask_during_a_migration_sends_the_command_to_the_importing_node(
    redis_cluster: RedisClusterServers,
) -> None:
    keys = keys_by_node(redis_cluster, per_node=2)
    source, target = redis_cluster.ports[2], redis_cluster.ports[0]
    key = keys[source][1]
    slot = key_slot(key.encode())

    async def scenario() -> Any:
        batcher = ClusterCommandBatcher(url=redis_cluster.url)
        await batcher.submit(("PING",))
        await asyncio.to_thread(redis_cluster.slot_migrating, slot, target)
        # The key is not on the migrating node, so it answers ASK; the importing node runs it.
        return await batcher.submit(("SET", key, "asked"))

    assert asyncio.run(scenario()) is not None
    assert redis_cluster.command(source, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    redis_cluster.slot_move(slot, target)  # finish the migration; the key was written there
    assert redis_cluster.node(target).get(key) == b"asked"


def test_a_node_that_does_not_answer_fails_only_its_own_callers(redis_cluster: RedisClusterServers) -> None:
    keys = keys_by_node(redis_cluster, per_node=2)
    silent = redis_cluster.ports[1]

    async def scenario() -> dict[int, list[Any]]:
        batcher = ClusterCommandBatcher(url=redis_cluster.url, timeout_s=0.5)
        await asyncio.gather(
            *(batcher.submit(("SET", k, "1")) for node_keys in keys.values() for k in node_keys)
        )
        await asyncio.to_thread(redis_cluster.command, silent, "CLIENT", "PAUSE", 1500, "ALL")
        replies = await asyncio.gather(
            *(batcher.submit(("GET", k)) for node_keys in keys.values() for k in node_keys),
            return_exceptions=True,
        )
        by_node = {port: list(replies[2 * n : 2 * n + 2]) for n, port in enumerate(keys)}
        await asyncio.sleep(1.2)  # the pause ends: the node's next batch reconnects and runs
        by_node[0] = list(await asyncio.gather(*(batcher.submit(("GET", k)) for k in keys[silent])))
        return by_node

    by_node = asyncio.run(scenario())
    for port in redis_cluster.ports:
        if port == silent:
            assert all(isinstance(reply, RedisTimeoutError) for reply in by_node[port])
        else:
            assert by_node[port] == [b"1", b"1"]
    assert by_node[0] == [b"1", b"1"]


def test_the_pooled_clients_are_cluster_clients_that_run_scripts_on_every_node(
    redis_cluster: RedisClusterServers,
) -> None:
    """What does not ride the batches (admin, Celery tasks, jobs) goes through redis-py's RedisCluster."""
    keys = [node_keys[0] for node_keys in keys_by_node(redis_cluster, per_node=1).values()]
    script = RedisScript(f"return redis.call('INCRBY', KEYS[1], ARGV[1]) -- pooled {id(keys)}")

    async def scenario() -> list[Any]:
        return [await script.run(get_redis(), [key], [2]) for key in keys]

    with override_settings(REDIS_URL=redis_cluster.url, REDIS_CLUSTER=True):
        assert isinstance(get_sync_redis(), redis.RedisCluster)
        assert asyncio.run(scenario()) == [2, 2, 2]
        assert [script.run_sync(get_sync_redis(), [key], [3]) for key in keys] == [5, 5, 5]
    for port, key in zip(redis_cluster.ports, keys, strict=True):
        assert int(redis_cluster.node(port).get(key) or 0) == 5
