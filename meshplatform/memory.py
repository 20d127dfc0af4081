"""Giving a worker's freed memory back to the OS once it goes idle.

Why. After a load (thousands of concurrent streams) a web worker stayed hundreds of MB above its
idle size. It is the allocator, not a leak: the objects are freed, but glibc's malloc keeps the
freed heap (fragmented, and in per-thread arenas) instead of returning it; `malloc_trim` gives
it back, which it could not do for live objects (README "Memory" has the measurement). So when a
worker has served requests and then had none in flight for two MESH_IDLE_TRIM_S intervals, it
runs one full collection and `malloc_trim(0)`: milliseconds, and only while nothing waits.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class IdleTrimmer:
    """Counts requests in flight (two integer updates per request) and trims when idle."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.served_since_trim = 0
        self.interval: float = settings.MESH_IDLE_TRIM_S
        self.trim = _malloc_trim() if self.interval > 0 else None
        self.task: asyncio.Task[None] | None = None

    def request_started(self) -> None:
        self.in_flight += 1
        self.served_since_trim += 1
        if self.task is None and self.trim is not None:
            self.task = asyncio.get_running_loop().create_task(self.watch())

    def request_finished(self) -> None:
        self.in_flight -= 1

    async def watch(self) -> None:
        """Every interval: trim if requests were served since the last trim and none is in flight."""
        seen = -1
        while True:
            await asyncio.sleep(self.interval)
            if self.in_flight or not self.served_since_trim:
                continue
            if seen != self.served_since_trim:  # new requests ended in the last interval: wait one more
                seen = self.served_since_trim
                continue
            self.served_since_trim, seen = 0, -1
            self.release()

    def release(self) -> None:
        gc.collect()
        if self.trim is not None:
            self.trim(0)
