"""`python -m bench [--quick]`: benchmark the gateway against the simulator on loopback and print a report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.loadgen import raise_fd_limit
from bench.report import BenchReport, markdown, write_json
from bench.runner import BenchPlan, Runner, Target, request_body
from bench.services import (
    REPO_ROOT,
    BenchSetupError,
    Gateway,
    PeakRss,
    ResourceMeter,
    gateway_env,
    provision_gateway,
    source_database,
)
from bench.stats import TargetName
from simulator.server import SimulatorServer

GATEWAY_LOG_LINES = 8
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "latest.json"
CPUS = os.cpu_count() or 1
# Small hosts are the common case (CI, laptops in containers); more processes than cores only adds switching.
DEFAULT_SIMULATOR_WORKERS = min(4, max(2, CPUS // 2))
DEFAULT_LOAD_PROCESSES = min(4, max(1, CPUS // 2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short cells and 200 slow streams (about a minute)"
    )
    parser.add_argument("--gateway-url", help="benchmark this running gateway (e.g. http://127.0.0.1:8000)")
    parser.add_argument("--key", help="API key for --gateway-url")
    parser.add_argument("--direct-only", action="store_true", help="measure only the simulator (no gateway)")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 3, --quick 1)")
    parser.add_argument(
        "--slow-clients", type=int, help="concurrent slow streams (default 2000, --quick 200)"
    )
    parser.add_argument(
        "--idle-after-s",
        type=float,
        help="idle this long after the gateway's slow streams, then read its RSS (default 60, quick 15)",
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip the slow-stream run")
    parser.add_argument("--slow-only", action="store_true", help="only the slow-stream run (no cells)")
    parser.add_argument(
        "--load-processes", type=int, default=DEFAULT_LOAD_PROCESSES, help="load generator processes"
    )
    parser.add_argument(
        "--simulator-workers", type=int, default=DEFAULT_SIMULATOR_WORKERS, help="simulator workers"
    )
    parser.add_argument(
        "--gateway-app",
        default="meshplatform.asgi:application",
        help="ASGI app to serve as the gateway (for A/B runs of a candidate change)",
    )
    parser.add_argument(
        "--allocator",
        choices=("jemalloc", "pymalloc"),
        default="jemalloc",
        help="start the gateway through scripts/with-jemalloc as the Procfile does (default), "
        "or on pymalloc (for A/B runs)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="the checkout whose gateway is measured (an A/B run against an earlier commit's worktree)",
    )
    parser.add_argument("--pythonpath", default="", help="extra import path for --source's gateway")
    parser.add_argument(
        "--lifespan",
        choices=["on", "auto"],
        default="on",
        help="uvicorn's --lifespan (auto: a checkout without one)",
    )
    parser.add_argument("--model", default="openai/gpt-4o", help="model id asked of the gateway")
    parser.add_argument(
        "--anthropic-model",
        default="anthropic/claude-haiku-4-5",
        help="model id of the anthropic/* cell (the same gateway, translating to Anthropic's Messages API)",
    )
    parser.add_argument("--skip-anthropic", action="store_true", help="no anthropic/* cell")
    parser.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="Prometheus samples in the gateway (on: MESH_METRICS_TOKEN set, as a scraped deployment runs)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON results")
    args = parser.parse_args(argv)
    if args.skip_slow and args.slow_only:
        parser.error("--skip-slow and --slow-only leave nothing to measure")
    if args.gateway_url and not args.key:
        parser.error("--gateway-url needs --key")
    return args


@contextlib.contextmanager
def gateway_target(
    args: argparse.Namespace, simulator: SimulatorServer
) -> Iterator[tuple[Target, ResourceMeter]]:
    if args.gateway_url:
        url = args.gateway_url.rstrip("/")
        target = Target("gateway", f"{url}/v1", args.key, args.model, f"{url}/healthz")
        yield target, ResourceMeter.for_listener(url)
        return
    env = gateway_env(simulator.openai_base_url, metrics=args.metrics == "on")
    source = args.source.resolve()
    env["DATABASE_URL"], database = source_database(source)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), args.pythonpath]))
    print("provisioning the gateway (database, migrations, tenant, key)…", flush=True)
    key = provision_gateway(env, root=source, database=database)
    jemalloc = args.allocator == "jemalloc"
    with Gateway(
        env, app=args.gateway_app, jemalloc=jemalloc, source=source, lifespan=args.lifespan
    ) as gateway:
        assert gateway.process is not None
        target = Target("gateway", f"{gateway.url}/v1", key, args.model, f"{gateway.url}/healthz")
        yield target, ResourceMeter([gateway.process.pid])
        log = gateway.log_text().strip().splitlines()
        if log:
            tail = "\n".join(line[:300] for line in log[-GATEWAY_LOG_LINES:])
            print(
                f"\ngateway printed {len(log)} log lines (kept in {gateway.log}); the last ones:\n{tail}\n",
                flush=True,
            )


def smoke_test(target: Target) -> None:
    """One request of each kind first, so a broken gateway fails in its own words, not as a table."""
    headers = {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}
    for stream in (False, True):
        body = request_body(target.model, stream=stream, mock={"chunks": 3} if stream else {})
        response = httpx.post(target.completions_url, content=body, headers=headers, timeout=30)
        if response.status_code != 200 or (stream and b"[DONE]" not in response.content):
            raise BenchSetupError(
                f"{target.name} smoke test ({'stream' if stream else 'json'}) "
                f"got HTTP {response.status_code}: {response.text[:1000]}"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    plan = BenchPlan(
        cell_duration_s=args.duration or (1.0 if args.quick else 3.0),
        slow_clients=args.slow_clients or (200 if args.quick else 2000),
        load_processes=args.load_processes,
        idle_after_s=args.idle_after_s if args.idle_after_s is not None else (15.0 if args.quick else 60.0),
    )
    meta = {
        "profile": "quick" if args.quick else "full",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "gateway": args.gateway_url
        or f"uvicorn meshplatform.asgi:application from {args.source.resolve()}, 2 workers, "
        f"production settings, metrics {args.metrics}",
        "simulator_workers": args.simulator_workers,
        "load_processes": plan.load_processes,
        "cell_duration_s": plan.cell_duration_s,
        "stream_chunks": plan.stream_chunks,
        "cpus": CPUS,
        # Other work on the host skews latencies (not CPU per request): say how busy it was.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    started = time.monotonic()
    runner = Runner(plan)
    try:
        # Anthropic requests cannot carry the `mock` field: the simulator streams this many chunks
        # by default, as the OpenAI cells ask in their body.
        os.environ["MESH_SIM_STREAM_CHUNKS"] = str(plan.stream_chunks)
        with SimulatorServer(workers=args.simulator_workers) as simulator:
            direct = Target(
                "direct",
                simulator.openai_base_url,
                "sk-direct",
                args.model.split("/", 1)[-1],
                f"{simulator.base_url}/_sim/health",
            )
            assert simulator.process is not None
            simulator_meter = ResourceMeter([simulator.process.pid])
            if args.direct_only:
                cells = runner.cells([direct], {"direct": simulator_meter})
                slow = [] if args.skip_slow else [runner.slow_streams(direct, simulator_meter)]
                report = BenchReport(meta=meta, cells=cells, slow=slow, gateway_peak_rss_mb=None)
            else:
                with gateway_target(args, simulator) as (gateway, meter):
                    targets = [gateway]
                    if not args.skip_anthropic:
                        targets.append(
                            dataclasses.replace(gateway, name="anthropic", model=args.anthropic_model)
                        )
                    for target in targets:
                        smoke_test(target)
                    meta["allocator"] = meter.allocator() if meter.available else "unknown"
                    meters: dict[TargetName, ResourceMeter] = {"direct": simulator_meter}
                    if meter.available:
                        meters["gateway"] = meters["anthropic"] = meter
                    print(f"measuring {plan.cell_duration_s:g} s per cell…", flush=True)
                    with PeakRss(meter) as peak:
                        cells = [] if args.slow_only else runner.cells([*targets, direct], meters)
                    slow = []
                    if not args.skip_slow:
                        print(
                            f"slow streams: {plan.slow_clients} clients, direct then through the gateway…",
                            flush=True,
                        )
                        slow.append(runner.slow_streams(direct, simulator_meter))
                        slow.append(runner.slow_streams(gateway, meter if meter.available else None))
                    peak_mb = peak.peak / 2**20 if meter.available else None
                    report = BenchReport(meta=meta, cells=cells, slow=slow, gateway_peak_rss_mb=peak_mb)
    except BenchSetupError as error:
        print(f"bench: cannot run: {error}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    report.meta["total_s"] = round(time.monotonic() - started, 1)
    print()
    print(markdown(report))
    write_json(report, args.output)
    args.output.with_suffix(".md").write_text(markdown(report))
    print(f"results written to {args.output} and .md (total {report.meta['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
