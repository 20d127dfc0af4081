"""Micro-benchmark of template rendering: `python -m templates_app.benchmark [--redis]`.

Measures, for a 20-message template: compiling a version (once per version per process),
rendering it (every request), and with --redis the whole hot-path step `template_expand`
on a Redis cache hit (wall and CPU time; needs REDIS_URL, uses Redis DB 12 unless told).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from templates_app.rendering import template_compile
from templates_app.types import DeclaredVariable, TemplateContent, VersionPayload

FILLER = "Keep answers short, cite the knowledge base, never promise refunds. " * 4


def bench_payload(messages: int = 20) -> VersionPayload:
    """A realistic template: ~300-character texts with two or three slots each, some as text parts."""
    rendered: list[dict[str, Any]] = []
    for index in range(messages):
        text = f"Step {index} for {{{{company}}}} ({{{{ plan }}}} plan, region {{{{region}}}}). {FILLER}"
        if index % 4 == 3:
            rendered.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
                    ],
                }
            )
        else:
            rendered.append({"role": "system" if index == 0 else "assistant", "content": text})
    return VersionPayload(
        template_id=str(uuid.uuid4()),
        version_id=str(uuid.uuid4()),
        number=1,
        content=TemplateContent(
            messages=rendered,
            model="openai/gpt-4o-mini",
            params={"temperature": 0.2, "max_tokens": 400},
            variables=(DeclaredVariable("region", "eu"),),
        ),
    )


VARIABLES = {"company": "Acme Cloud", "plan": "Pro", "unused": "x"}


def per_call_us(func: Callable[[], object], *, number: int, repeat: int = 7) -> tuple[float, float]:
    """(median, best) microseconds per call over `repeat` timed loops of `number` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples), min(samples)


def bench_rendering() -> None:
    payload = bench_payload()
    compile_med, compile_best = per_call_us(lambda: template_compile(payload), number=500)
    compiled = template_compile(payload)

    def render() -> None:
        compiled.render_messages(VARIABLES)
        compiled.render_params()

    render_med, render_best = per_call_us(render, number=5000)
    print(f"20-message template, {len(compiled.slot_at)} slot occurrences, slots {list(compiled.slots)}")
    print(
        f"  compile (once per version per process): median {compile_med:7.1f} µs  best {compile_best:7.1f} µs"
    )
    print(
        f"  render  (every request):                median {render_med:7.1f} µs  best {render_best:7.1f} µs"
    )


async def _bench_expand(calls: int) -> tuple[float, float]:
    from meshplatform.redis import get_redis
    from templates_app.cache import cache_key, template_cache_fill, template_cache_get
    from templates_app.expansion import template_expand

    tenant_id = 999_999  # no real tenant has this id; its hash is removed afterwards
    await get_redis().delete(cache_key(tenant_id))
    _, gen = await template_cache_get(tenant_id, "bench")
    await template_cache_fill(tenant_id, "bench", gen, bench_payload())
    await template_expand(tenant_id=tenant_id, ref="bench", variables=VARIABLES)  # compiles once
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await template_expand(tenant_id=tenant_id, ref="bench", variables=VARIABLES)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await get_redis().delete(cache_key(tenant_id))
    return wall / calls * 1e6, cpu / calls * 1e6


def bench_expand(calls: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.test")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    django.setup()
    import uvloop  # as the gateway runs

    wall, cpu = uvloop.run(_bench_expand(calls))
    print(f"  template_expand on a Redis hit (one HMGET round trip + render), {calls} calls:")
    print(f"    wall {wall:7.1f} µs/call   CPU in this process {cpu:7.1f} µs/call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", action="store_true", help="also time template_expand against Redis")
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    bench_rendering()
    if args.redis:
        bench_expand(args.calls)


if __name__ == "__main__":
    main()
