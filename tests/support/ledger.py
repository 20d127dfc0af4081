"""`LedgerFlusher`: moves usage events from the Redis write-ahead stream into the test database.

In production a Celery beat task does this every second (usage/tasks.py). The test session
cannot keep a Celery worker alive across tests (every test flushes its Redis database, the
broker's bindings with it), so this thread runs the same service, `usage_stream_flush`, in
the test process while the gateway fixture is up. Tests that exercise the stream or Celery
themselves pause it (`with ledger_flusher.paused(): ...`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType

from django.db import connection

logger = logging.getLogger(__name__)
INTERVAL_S = 0.05
# A flush that failed halfway (e.g. between tests, while pytest-django blocks the database)
# leaves its entries pending; take them over again quickly.
CLAIM_IDLE_MS = 300


class LedgerFlusher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="ledger-flusher", daemon=True)
        self._stop_event = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Lock()

    def run(self) -> None:
        from usage.flushing import usage_stream_flush

        try:
            while not self._stop_event.wait(INTERVAL_S):
                if not self._running.is_set():
                    continue
                with self._idle:
                    try:
                        usage_stream_flush(
                            consumer="test-ledger-flusher", claim_idle_ms=CLAIM_IDLE_MS, time_budget_s=1.0
                        )
                    except Exception as error:  # database blocked between tests, Redis flushed: next round
                        logger.debug("ledger flush deferred: %s", error)
        finally:
            connection.close()

    def pause(self) -> None:
        """No flush runs after this returns (one in progress is waited for)."""
        self._running.clear()
        with self._idle:
            pass

    def resume(self) -> None:
        self._running.set()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No flush runs inside the block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def __enter__(self) -> LedgerFlusher:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop_event.set()
        self.join(10)
