"""Giving a worker's freed memory back to the OS once it goes idle.

Why. Measured after 1,000 concurrent slow streams on one web worker (118 MB idle): it stayed at
~170 MB, and not because anything survived. Python's object allocator (pymalloc) held the same
~61 MB of live objects as before the load (+0.3 MB, `sys._debugmallocstats`), but in 109 of its
1 MiB arenas instead of 59: an arena goes back to the OS only once every object in it is freed,
and the few objects allocated during the load that outlive it pin the arenas the load filled
(which ones was not traced one by one: tracemalloc slows a loaded worker into timeouts).
glibc's malloc_trim cannot reach those (pymalloc maps its arenas itself), and with
PYTHONMALLOC=malloc on glibc the survivors pin glibc's heap pages instead (173 MB, 62 MB free).

So the web tier runs on jemalloc with PYTHONMALLOC=malloc (`scripts/with-jemalloc`, used by the
Procfile and `make bench`): its small-object slabs are pages, not 1 MiB arenas, and it returns
unused pages by itself (`background_thread`, decay). When a worker has served requests and then
had none in flight for two MESH_IDLE_TRIM_S intervals, it also runs one full collection and
hands every unused page back at once (jemalloc's `arena.<all>.purge`; glibc's `malloc_trim(0)`
where jemalloc is not loaded): milliseconds, only while nothing waits.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)


# jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena.
JEMALLOC_PURGE_ALL = b"arena.4096.purge"


def _jemalloc_purge() -> Callable[[], int] | None:
    """Purge every jemalloc arena's unused pages, or None when jemalloc is not the process's malloc."""
    try:
        mallctl = ctypes.CDLL(None).mallctl  # present only when jemalloc is loaded (LD_PRELOAD)
    except (OSError, AttributeError):
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    mallctl.restype = ctypes.c_int

    def purge() -> int:
        result: int = mallctl(JEMALLOC_PURGE_ALL, None, None, None, 0)
        return result

    return purge


def _malloc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None

    def release() -> int:
        result: int = trim(0)
        return result

    return release


def allocator_release() -> Callable[[], int] | None:
    """What returns the allocator's unused pages to the OS: jemalloc's purge, else glibc's trim."""
    return _jemalloc_purge() or _malloc_trim()


def allocator_name() -> str:
    """The allocator in use, for the start-up line: jemalloc or libc malloc, "+ pymalloc" unless
    Python allocates its objects through it (PYTHONMALLOC=malloc)."""
    jemalloc = _jemalloc_purge() is not None
    pymalloc = os.environ.get("PYTHONMALLOC", "") not in ("malloc", "malloc_debug")
    return ("jemalloc" if jemalloc else "libc malloc") + (" + pymalloc" if pymalloc else "")


class IdleTrimmer:
    """Counts requests in flight (two integer updates per request) and trims when idle."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.served_since_trim = 0
        self.interval: float = settings.MESH_IDLE_TRIM_S
        self.trim = allocator_release() if self.interval > 0 else None
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
            self.trim()
