"""Prometheus samples taken on the hot path, summed in memory and written to the multiprocess
files by a background thread at most MESH_METRICS_FLUSH_S after they were taken.

Why: prometheus-client's multiprocess value writes every sample as it comes, under a lock, after
a getpid() and through an mmap write: about 3 µs a counter increment and 6 µs a histogram
observation on a small host, 48 µs for a streamed request's dozen samples, above the 30 µs a
request may spend on metrics. Here a request's samples are additions to one list of amounts under
one uncontended lock (`Tallies`), and each process writes a label set's sums once per interval,
whatever the traffic.

What it costs the scrape: a sample reaches /metrics up to MESH_METRICS_FLUSH_S (1 s) late, well
inside any scrape interval; the scraped worker writes its own pending sums before it answers.
Nothing is lost at exit: a web worker writes them in its drain (MESH_DRAIN_HOOKS), any other
process at interpreter exit, and a forked child starts with none of its parent's.

The sums go to the children's values (`_value`, `_sum`, `_buckets`), which are not
prometheus-client's public API: tests/meshplatform/test_metric_samples.py proves they equal what
the client's own inc()/observe() write, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from django.conf import settings


class Value(Hashable, Protocol):
    """prometheus-client's per-process value (MmapedValue in multiprocess mode), hashed by identity."""

    def inc(self, amount: float) -> None: ...


def counter_values(child: Any) -> list[Value]:
    """A labelled Counter's (or Gauge's) one value."""
    return [child._value]


def histogram_values(child: Any) -> list[Value]:
    """A labelled Histogram's values: its sum, then one per bucket (not cumulative: an observation
    adds 1 to the first bucket whose bound is ≥ it, as Histogram.observe does)."""
    return [child._sum, *child._buckets]


def bucket_of(bounds: tuple[float, ...], amount: float) -> int:
    """The index of the bucket an observation falls in, among `bounds` (the last one +Inf)."""
    return bisect_left(bounds, amount)


class Tallies:
    """Sums not yet written, per key (say, a request's label set): a list of amounts, each added
    to the prometheus value at the same index of the key's values when written.

    Hot path: `with tallies.lock: amounts = tallies.amounts(key); amounts[i] += …`."""

    def __init__(self, values_of: Callable[[Any], list[Value]]) -> None:
        self.lock = threading.Lock()
        self.pending: dict[Hashable, list[float]] = {}
        self._values_of = values_of
        self._values: dict[Hashable, list[Value]] = {}
        _writer.tallies.append(self)

    def amounts(self, key: Hashable) -> list[float]:
        """The key's pending amounts, to add to in place; call it with `lock` held."""
        amounts = self.pending.get(key)
        if amounts is None:
            if not self.pending:  # the first sum since the last write: have it written in time
                _writer.wake()
            values = self._values.get(key)
            if values is None:
                values = self._values[key] = self._values_of(key)
            amounts = self.pending[key] = [0.0] * len(values)
        return amounts

    def write(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for key, amounts in pending.items():
            for value, amount in zip(self._values[key], amounts, strict=True):
                if amount:
                    value.inc(amount)

    def forget(self) -> None:
        """In a forked child: the parent writes what it had pending; the lock may have been held."""
        self.lock = threading.Lock()
        self.pending = {}


class _Writer:
    """The thread that writes every Tallies' sums, MESH_METRICS_FLUSH_S after the first pending one."""

    def __init__(self) -> None:
        self.tallies: list[Tallies] = []
        self.event = threading.Event()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()

    def wake(self) -> None:
        if self.thread is None:
            with self.start_lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="metric-samples", daemon=True)
                    self.thread.start()
        self.event.set()

    def _run(self) -> None:
        while True:
            self.event.wait()
            self.event.clear()
            time.sleep(settings.MESH_METRICS_FLUSH_S)  # gather the interval's samples into one write each
            samples_write()

    def forget(self) -> None:
        self.event, self.thread, self.start_lock = threading.Event(), None, threading.Lock()
        for tallies in self.tallies:
            tallies.forget()


_writer = _Writer()


def samples_write() -> None:
    """Write this process's pending sums to its multiprocess files now."""
    for tallies in _writer.tallies:
        tallies.write()


async def samples_drain() -> None:
    """MESH_DRAIN_HOOKS: a web worker's last samples, written before it exits."""
    samples_write()


os.register_at_fork(after_in_child=_writer.forget)
atexit.register(samples_write)


# One-value samples (a counter's or gauge's child), for the samples not taken per request.
_singles = Tallies(lambda value: [value])


class CounterSamples:
    __slots__ = ("_value",)

    def __init__(self, child: Any) -> None:
        self._value: Value = child._value

    def inc(self, amount: float = 1.0) -> None:
        with _singles.lock:
            _singles.amounts(self._value)[0] += amount


class GaugeSamples(CounterSamples):
    __slots__ = ()

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)
