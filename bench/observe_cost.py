"""`python -m bench.observe_cost [N]`: CPU time the observer adds to one request (its Prometheus
samples, in-flight gauges and JSON access line), over N calls of the ledger's hooks, each part
against the hooks with it switched off (samples are on as a scraped deployment runs them:
MESH_METRICS_TOKEN set, a multiprocess directory of its own)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from decimal import Decimal

import django


def observe_cost_us(calls: int, *, metrics: bool = True, access_line: bool = True) -> float:
    """Microseconds of CPU (time.process_time) per request observed, a streamed chat request with
    one upstream attempt; the access line goes to /dev/null (the write's cost, not a terminal's)."""
    from keys.types import ResolvedKey
    from usage import observe
    from usage.ledger import Attempt
    from usage.observe import request_ended, request_observed, request_started, stream_started
    from usage.types import TokenUsage, UsageEventData

    hooks = vars(observe)  # METRICS_ON is the module's constant, read by each hook
    saved = observe.access_log, hooks["METRICS_ON"]
    with open(os.devnull, "w") as devnull:
        observe.access_log = observe.access_logger(devnull, enabled=access_line)
        hooks["METRICS_ON"] = metrics
        key = ResolvedKey(
            key_id=1, key_prefix="rsk_01BENCH", key_name="bench", tenant_id=1, tenant_name="acme",
            is_active=True, revoked=False, tenant_suspended=False, expires_at=None, default_model="",
            allowed_models=(), rpm=None, rpd=None, key_cap=None, tenant_cap=None,
        )  # fmt: skip
        event = UsageEventData(
            request_id="req_bench", tenant_id=1, key_id=1, model_requested="openai/gpt-4o-mini",
            started_at=time.time(), model_served="openai/gpt-4o-mini", provider="openai",
            tokens=TokenUsage(prompt_tokens=12, completion_tokens=30, cached_tokens=4),
            cost_usd=Decimal("0.0000234"), latency_ms=120, ttft_ms=35, streamed=True,
        )  # fmt: skip
        attempts = [Attempt(model="openai/gpt-4o-mini", provider="openai", status=200, error_code=None,
                            duration_ms=100)]  # fmt: skip
        try:
            started = time.process_time()
            for _ in range(calls):
                request_started()
                stream_started()
                request_ended(streamed=True)
                request_observed(key=key, event=event, attempts=attempts)
            spent = time.process_time() - started
        finally:
            observe.access_log, hooks["METRICS_ON"] = saved
    return spent / calls * 1e6


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshplatform.settings.dev")
    os.environ["MESH_METRICS_TOKEN"] = "observe-cost"
    with tempfile.TemporaryDirectory(prefix="mesh-observe-cost-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        django.setup()
        observe_cost_us(calls // 10)  # warm: label sets created, files mapped
        neither = observe_cost_us(calls, metrics=False, access_line=False)
        metrics = observe_cost_us(calls, access_line=False) - neither
        line = observe_cost_us(calls, metrics=False) - neither
    print(f"{calls} requests observed: {metrics:.1f} µs CPU each for the metrics,")
    print(f"{line:.1f} µs for the access line ({neither:.1f} µs for the hooks with both off)")


if __name__ == "__main__":
    main()
