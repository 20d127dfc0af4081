"""Running blocking ORM work from async code without blocking the event loop."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

from meshplatform.framework import database_call_scope

P = ParamSpec("P")
R = TypeVar("R")


def db_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run `func` in the executor's reused threads, in a connection scope (meshplatform.framework).

    `thread_sensitive=False` keeps the threads (and their persistent connections) alive
    across requests instead of one new thread per request context.
    """

    def with_fresh_connection(*args: P.args, **kwargs: P.kwargs) -> R:
        with database_call_scope():
            return func(*args, **kwargs)

    wrapped = sync_to_async(with_fresh_connection, thread_sensitive=False)

    @functools.wraps(func)
    async def runner(*args: P.args, **kwargs: P.kwargs) -> R:
        return await wrapped(*args, **kwargs)

    return runner
