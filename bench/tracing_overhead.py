"""What the tracing helpers cost one chat request, off and on: `python -m bench.tracing_overhead`.

Runs the helper calls one non-streamed request makes (auth, validation, request, model
resolution, one upstream attempt answered, the ledger record) in a tight loop, first with tracing
off (the default: no tracer), then on (an SDK provider whose batch processor drops the spans, so
the export itself is not counted), and prints the cost per request in microseconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.test")
django.setup(set_prefix=False)

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from meshplatform import tracing  # noqa: E402

PAYLOAD = {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop"}]}


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def one_request() -> None:
    with tracing.span("mesh.auth"):
        pass
    with tracing.span("mesh.validate"):
        pass
    with tracing.request_span("req_01"):
        with tracing.span("mesh.model.resolve"):
            pass
        attempt = tracing.attempt_start(
            provider="openai", model="gpt-4o-mini", mesh_model="openai/x", number=1
        )
        tracing.attempt_answered(attempt, PAYLOAD, input_tokens=12, output_tokens=34)
        with tracing.span("mesh.ledger.record", "req_01"):
            pass


async def per_request_us(rounds: int) -> float:
    for _ in range(1000):  # warm up
        await one_request()
    started = time.perf_counter()
    for _ in range(rounds):
        await one_request()
    return (time.perf_counter() - started) / rounds * 1e6


async def baseline_us(rounds: int) -> float:
    """The same loop with nothing in it: what the awaits alone cost."""

    async def nothing() -> None:
        return None

    started = time.perf_counter()
    for _ in range(rounds):
        await nothing()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    rounds = 200_000
    assert tracing._tracer is None
    base = asyncio.run(baseline_us(rounds))
    off = asyncio.run(per_request_us(rounds))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    tracing._tracer = provider.get_tracer("mesh")
    on = asyncio.run(per_request_us(rounds // 10))
    provider.shutdown()
    print(f"tracing off: {off - base:.2f} µs per request ({off:.2f} with the loop)")
    print(f"tracing on:  {on - base:.2f} µs per request (7 spans, export not counted)")


if __name__ == "__main__":
    main()
