"""Objects that belong to one event loop (connection pools, caches, batchers): one per running loop."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """One `T` per running event loop, made by `factory` on first use there.

    Pools and futures cannot cross loops. Keyed weakly by the loop itself (not its id, which a
    new loop may reuse after an old one closed), so a finished loop's objects go with it.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        # The last loop asked about (a server has one): a weak reference and its `T`, so the hot
        # path skips the weak dictionary's lookup (several per request).
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], T] | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        value = self._by_loop.get(loop)
        if value is None:
            value = self._by_loop[loop] = self._factory()
        self._last = (weakref.ref(loop), value)
        return value
