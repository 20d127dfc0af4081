"""`manage.py usage_microbench`: CPU cost per request of the ledger's hot-path write (usage_record)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from meshplatform.redis import get_redis
from usage.codec import event_encode
from usage.recording import STREAM, usage_record
from usage.types import TokenUsage, UsageEventData


def sample_event(index: int) -> UsageEventData:
    """A typical finished request: a session, one attempt, real-looking tokens and cost."""
    return UsageEventData(
        request_id=f"req_microbench_{index:012d}", tenant_id=1, key_id=1, model_requested="openai/gpt-4o",
        started_at=time.time() - 0.35, session_id="checkout-flow-42", model_served="openai/gpt-4o",
        provider="openai", tokens=TokenUsage(prompt_tokens=812, completion_tokens=164, cached_tokens=256),
        attempts=[{"model": "openai/gpt-4o", "provider": "openai", "status": 200, "error_code": None,
                   "duration_ms": 341}],
        cost_usd=Decimal("0.003470000"), ttft_ms=120, http_status=200,
    )  # fmt: skip


class Command(BaseCommand):
    help = (
        "Measures usage_record (encode + one XADD) in CPU µs per call against REDIS_URL. Run it against an "
        "idle Redis database: it refuses a non-empty ledger stream and deletes the stream afterwards."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--requests", type=int, default=20_000)
        parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("Set REDIS_URL to an idle Redis database (e.g. redis://127.0.0.1:6379/14).")
        if not settings.MESH_USAGE_RECORDING:
            raise CommandError("MESH_USAGE_RECORDING is off: there is nothing to measure.")
        count: int = options["requests"]
        events = [sample_event(i) for i in range(count)]
        encode_cpu = _cpu_per_call(lambda: [event_encode(e) for e in events], count)
        self.stdout.write(f"usage_record, {count} calls, uvloop, Redis {settings.REDIS_URL}")
        self.stdout.write(f"  encode only:                      {encode_cpu:7.1f} µs CPU per event")
        for concurrency in options["concurrency"]:
            cpu, wall = uvloop.run(_measure_record(events, concurrency))
            self.stdout.write(
                f"  encode + XADD, {concurrency:3d} concurrent:     {cpu:7.1f} µs CPU per request "
                f"({wall:7.1f} µs wall per request)"
            )


def _cpu_per_call(action: Any, count: int) -> float:
    started = time.process_time()
    action()
    return (time.process_time() - started) / count * 1e6


async def _measure_record(events: list[UsageEventData], concurrency: int) -> tuple[float, float]:
    """Process CPU and wall time per usage_record call, `concurrency` callers at once."""
    redis = get_redis()
    if await redis.xlen(STREAM):
        raise CommandError(f"{STREAM} is not empty: point REDIS_URL at an idle Redis database.")

    async def caller(share: list[UsageEventData]) -> None:
        for event in share:
            await usage_record(event=event)

    try:
        await asyncio.gather(*(caller(events[i:500:concurrency]) for i in range(concurrency)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(events[i::concurrency]) for i in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return cpu / len(events) * 1e6, wall / len(events) * 1e6
    finally:
        await redis.delete(STREAM)
