"""The buffered samples (meshplatform.metric_samples) write exactly what prometheus-client's own
inc()/observe() write, through the client's multiprocess files; they reach the files within the
flush interval, and a forked child does not write its parent's.

These tests pin the client internals the buffer writes to (a child's `_value`, `_sum`,
`_buckets`): an upgrade of prometheus-client that changes them fails here, not in production."""

from __future__ import annotations

import math
import os
import time

import pytest
from django.test import override_settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from meshplatform import metric_samples
from meshplatform.metric_samples import (
    GaugeSamples,
    Tallies,
    bucket_of,
    counter_values,
    histogram_values,
    samples_write,
)

BUCKETS = (0.005, 0.1, 1.0, 300.0)
BOUNDS = (*BUCKETS, math.inf)
# On the bounds, just past them, zero, negative, and past the last finite bound.
OBSERVED = [0.0, 0.005, 0.0050001, 0.1, 0.5, 1.0, 299.0, 300.0, 300.5, 1e9, -1.0]


Collected = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _collected(prefix: str) -> Collected:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    found: Collected = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith(prefix):
                found[(sample.name.removeprefix(prefix), frozenset(sample.labels.items()))] = sample.value
    return found


def test_the_values_are_the_multiprocess_files() -> None:
    assert values.ValueClass.__name__ == "MmapedValue", (
        "tests must run prometheus-client in multiprocess mode"
    )


def test_buffered_sums_equal_the_clients_own_writes() -> None:
    suffix = f"{os.getpid()}_{time.monotonic_ns()}"
    kinds: dict[str, tuple[Counter, Histogram, Gauge]] = {}
    for way in ("direct", "buffered"):
        kinds[way] = (
            Counter(f"{way}_{suffix}_requests", "r", ["tenant"], registry=None),
            Histogram(f"{way}_{suffix}_seconds", "s", ["model"], buckets=BUCKETS, registry=None),
            Gauge(f"{way}_{suffix}_in_flight", "g", ["kind"], multiprocess_mode="livesum", registry=None),
        )
    counter, histogram, gauge = kinds["direct"]
    for amount in OBSERVED:
        histogram.labels("m").observe(amount)
        counter.labels("acme").inc(2)
        gauge.labels("streams").inc()
    gauge.labels("streams").dec(3)

    counter, histogram, gauge = kinds["buffered"]
    counts = Tallies(lambda tenant: counter_values(counter.labels(tenant)))
    seconds = Tallies(lambda model: histogram_values(histogram.labels(model)))
    in_flight = GaugeSamples(gauge.labels("streams"))
    try:
        for amount in OBSERVED:
            with seconds.lock:
                amounts = seconds.amounts("m")
                amounts[0] += amount
                amounts[1 + bucket_of(BOUNDS, amount)] += 1
            with counts.lock:
                counts.amounts("acme")[0] += 2
            in_flight.inc()
        in_flight.dec(3)
        assert _collected(f"buffered_{suffix}")[("_requests_total", frozenset({("tenant", "acme")}))] == 0
        samples_write()
    finally:
        metric_samples._writer.tallies.remove(counts)
        metric_samples._writer.tallies.remove(seconds)
    direct, buffered = _collected(f"direct_{suffix}"), _collected(f"buffered_{suffix}")
    assert direct[("_requests_total", frozenset({("tenant", "acme")}))] == 2 * len(OBSERVED)
    assert buffered == pytest.approx(direct)


def test_pending_sums_reach_the_files_within_the_flush_interval() -> None:
    name = f"interval_{os.getpid()}_{time.monotonic_ns()}"
    counter = Counter(name, "c", ["tenant"], registry=None)
    samples = metric_samples.CounterSamples(counter.labels("acme"))
    with override_settings(MESH_METRICS_FLUSH_S=0.05):
        samples.inc(5)
        deadline = time.monotonic() + 5
        while _collected(name).get(("_total", frozenset({("tenant", "acme")}))) != 5:
            assert time.monotonic() < deadline, "the writer thread did not write the pending sum"
            time.sleep(0.01)


def test_a_forked_child_does_not_write_its_parents_pending_sums() -> None:
    name = f"forked_{os.getpid()}_{time.monotonic_ns()}"
    counter = Counter(name, "c", ["tenant"], registry=None)
    samples = metric_samples.CounterSamples(counter.labels("acme"))
    with override_settings(MESH_METRICS_FLUSH_S=60):  # the parent's writer waits: nothing written yet
        samples.inc(7)
        child = os.fork()
        if child == 0:  # the child: nothing pending, and its own write adds nothing
            pending = any(tallies.pending for tallies in metric_samples._writer.tallies)
            samples_write()
            os._exit(1 if pending else 0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        samples_write()
    assert _collected(name)[("_total", frozenset({("tenant", "acme")}))] == 7
