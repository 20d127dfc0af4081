"""The observer's cost per request (bench/observe_cost.py): metrics and access line under 30 µs CPU."""

from __future__ import annotations

from bench.observe_cost import observe_cost_us


def test_observing_a_request_costs_under_30_microseconds_of_cpu() -> None:
    observe_cost_us(2_000)  # warm: label children created, files mapped
    assert observe_cost_us(20_000) < 30.0
