"""Running blocking ORM work from async code without blocking the event loop."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def db_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run `func` in the executor's reused threads, with Django's per-request connection hygiene.

    `thread_sensitive=False` keeps the threads (and their persistent connections) alive
    across requests instead of one new thread per request context.
    """

    def with_fresh_connection(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()  # with psycopg's pool (CONN_MAX_AGE=0): give it back

    wrapped = sync_to_async(with_fresh_connection, thread_sensitive=False)

    @functools.wraps(func)
    async def runner(*args: P.args, **kwargs: P.kwargs) -> R:
        return await wrapped(*args, **kwargs)

    return runner
