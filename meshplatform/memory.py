"""Giving a worker's freed memory back to the OS once it goes idle.

Why. After a load (thousands of concurrent streams) a web worker stays well above its idle
size, and glibc's malloc keeps freed heap (fragmented, in per-thread arenas) rather than return
it. When a worker has served requests and then had none in flight for two MESH_IDLE_TRIM_S
intervals, it runs one full collection and `malloc_trim(0)`: milliseconds, only while nothing
waits. Measured (1,500 concurrent slow streams, 2 workers, 60 s idle after): this gives back part
of the growth (a worker at 166 MB went to 156 MB; idle size 108 MB), not all of it: most of it
is not free malloc heap, and what holds it (pymalloc arenas pinned by surviving objects, pools,
caches) is not found yet. `make bench` reports the RSS after idling so it can be tracked.
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
