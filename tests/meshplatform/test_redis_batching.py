"""Auto-pipelined Redis commands: shared round trips, yet each caller gets its own reply or error."""

from __future__ import annotations

import asyncio

from redis.exceptions import ResponseError

from meshplatform.redis_batch import redis_batched


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
