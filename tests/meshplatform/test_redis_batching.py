"""Auto-pipelined Redis commands: shared round trips, yet each caller gets its own reply or error."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshplatform.redis_batch import redis_batched
from simulator.server import free_port
from tests.support.waiting import wait_until


def test_concurrent_commands_each_get_their_own_reply() -> None:
    async def scenario() -> list[int]:
        replies = await asyncio.gather(*(redis_batched("INCR", "{mesh:test}:counter") for _ in range(200)))
        return [int(reply) for reply in replies]

    replies = asyncio.run(scenario())
    assert sorted(replies) == list(range(1, 201))


def test_one_failing_command_does_not_fail_its_batch_neighbours() -> None:
    async def scenario() -> list[object]:
        await redis_batched("SET", "{mesh:test}:text", "not a number")
        replies: list[object] = await asyncio.gather(
            redis_batched("INCR", "{mesh:test}:n"),
            redis_batched("INCR", "{mesh:test}:text"),
            redis_batched("INCR", "{mesh:test}:n"),
            return_exceptions=True,
        )
        return replies

    first, failed, second = asyncio.run(scenario())
    assert (first, second) == (1, 2)
    assert isinstance(failed, ResponseError)


def test_a_command_alone_still_runs() -> None:
    assert asyncio.run(redis_batched("INCRBY", "{mesh:test}:alone", 5)) == 5


def _batch_connection_id() -> Awaitable[Any]:
    return redis_batched("CLIENT", "ID")


def test_a_connection_dropped_under_a_batch_fails_that_batch_and_the_next_command_reconnects() -> None:
    killer = redis.Redis.from_url(settings.REDIS_URL)

    async def scenario() -> tuple[BaseException | None, int, int]:
        first_id = int(await _batch_connection_id())
        blocked = asyncio.ensure_future(redis_batched("BLPOP", "{mesh:test}:never", 5))
        await asyncio.sleep(0.2)  # the BLPOP is in flight on the batch connection
        await asyncio.to_thread(killer.client_kill_filter, _id=str(first_id))
        failure = None
        try:
            await blocked
        except RedisConnectionError as error:
            failure = error
        second_id = int(await _batch_connection_id())
        return failure, first_id, second_id

    failure, first_id, second_id = asyncio.run(scenario())
    assert isinstance(failure, RedisConnectionError)
    assert second_id != first_id  # a fresh connection, and it answers


@override_settings(REDIS_COMMAND_TIMEOUT_S=0.3)
def test_a_batch_redis_does_not_answer_in_time_is_a_timeout_and_the_next_one_runs() -> None:
    async def scenario() -> tuple[BaseException | None, float, Any]:
        started = time.monotonic()
        failure = None
        try:
            await redis_batched("BLPOP", "{mesh:test}:never", 3)
        except RedisTimeoutError as error:
            failure = error
        waited = time.monotonic() - started
        return failure, waited, await redis_batched("INCR", "{mesh:test}:after")

    failure, waited, after = asyncio.run(scenario())
    assert isinstance(failure, RedisTimeoutError)
    assert waited < 2
    assert after == 1


def test_a_password_and_database_in_redis_url_are_used(tmp_path: Path) -> None:
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    server = subprocess.Popen(
        [*command, "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:s3cret@127.0.0.1:{port}/3"
    direct = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        wait_until(lambda: _answers(direct), timeout=10, what="the private redis-server")
        with override_settings(REDIS_URL=url):
            reply = asyncio.run(redis_batched("INCRBY", "{mesh:test}:authed", 7))
        assert reply == 7
        assert direct.get("{mesh:test}:authed") == b"7"  # database 3 of that server
        wrong = f"redis://:wrong@127.0.0.1:{port}/3"
        with override_settings(REDIS_URL=wrong), pytest.raises(AuthenticationError):
            asyncio.run(redis_batched("PING"))
    finally:
        server.terminate()
        server.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
