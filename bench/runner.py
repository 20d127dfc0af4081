"""Runs the benchmark's measurements against the targets, interleaved so both see the same machine state."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import orjson

from bench.loadgen import LoadResult, LoadSpec, raise_fd_limit, run_load
from bench.services import PeakRss, ResourceMeter
from bench.stats import (
    CellStats,
    Mode,
    ProcessRss,
    SlowStreamStats,
    TargetName,
    client_cores,
    percentile,
)

PROMPT = "Say hello to the benchmark"
WARMUP_S = 0.5
START_MARGIN_S = 0.3
RESULT_GRACE_S = 90.0
MODES: tuple[Mode, ...] = ("json", "stream")
CELL_REQUEST_TIMEOUT_S = 15.0  # a hung gateway costs a cell seconds, not minutes
SLOW_STREAM_RAMP_S = 1.0
SLOW_STREAM_SLACK_S = 20.0  # a slow stream later than ideal + this is an error, which bounds the run


@dataclass(frozen=True)
class Target:
    name: TargetName
    base_url: str  # up to and including /v1
    key: str
    model: str
    warm_url: str  # a cheap GET that opens a keep-alive connection

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/chat/completions"


@dataclass(frozen=True)
class BenchPlan:
    cell_duration_s: float
    slow_clients: int
    concurrencies: tuple[int, ...] = (1, 16, 64)
    stream_chunks: int = 20
    slow_chunks: int = 100
    slow_chunk_delay_ms: int = 100
    load_processes: int = 4
    # After the slow streams, the gateway's RSS is read again once it has been idle this long:
    # a worker should be back within 15 % of its size before the run (meshplatform/memory.py).
    idle_after_s: float = 60.0


def request_body(model: str, *, stream: bool, mock: dict[str, int]) -> bytes:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    if mock:
        body["mock"] = mock
    return orjson.dumps(body)


def _total_mb(sizes: dict[int, int]) -> float | None:
    return sum(sizes.values()) / 2**20 if sizes else None


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Runner:
    """Owns the load-generator pool for the whole run, so process start-up never lands in a measurement."""

    def __init__(self, plan: BenchPlan) -> None:
        self.plan = plan
        self.pool = ProcessPoolExecutor(
            max_workers=plan.load_processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=raise_fd_limit,
        )
        for future in [self.pool.submit(time.sleep, 0) for _ in range(plan.load_processes)]:
            future.result(timeout=60)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _rss_after_idle(self, meter: ResourceMeter | None) -> tuple[dict[int, int], dict[int, int]]:
        """Each process's RSS right after a load, and after `plan.idle_after_s` with no traffic."""
        if meter is None:
            return {}, {}
        after = meter.rss_by_pid()
        print(f"waiting {self.plan.idle_after_s:g} s idle to read the RSS again…", flush=True)
        time.sleep(self.plan.idle_after_s)
        return after, meter.rss_by_pid()

    def _load(
        self, specs: list[LoadSpec], meter: ResourceMeter | None, timeout_s: float
    ) -> tuple[list[LoadResult], float | None]:
        futures = [self.pool.submit(run_load, spec) for spec in specs]
        time.sleep(max(0.0, specs[0].start_at - time.time()))
        cpu_before = meter.cpu_seconds() if meter is not None else None
        results = [future.result(timeout=timeout_s) for future in futures]
        cpu_after = meter.cpu_seconds() if meter is not None else None
        cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        return results, cpu

    def cell(
        self, target: Target, mode: Mode, concurrency: int, meter: ResourceMeter | None, duration_s: float
    ) -> CellStats:
        stream = mode == "stream"
        mock = {"chunks": self.plan.stream_chunks} if stream else {}
        body = request_body(target.model, stream=stream, mock=mock)
        # Warming every connection takes longer at high concurrency; start the clock after it.
        start_at = time.time() + START_MARGIN_S + 0.01 * concurrency
        specs = [
            LoadSpec(
                url=target.completions_url,
                key=target.key,
                body=body,
                stream=stream,
                connections=share,
                start_at=start_at,
                duration_s=duration_s,
                expected_chunks=self.plan.stream_chunks if stream else None,
                timeout_s=CELL_REQUEST_TIMEOUT_S,
            )
            for share in split(concurrency, self.plan.load_processes)
        ]
        results, cpu = self._load(specs, meter, duration_s + RESULT_GRACE_S)
        return CellStats.merge(target.name, mode, concurrency, results, cpu)

    def cells(self, targets: list[Target], meters: dict[TargetName, ResourceMeter]) -> list[CellStats]:
        for target in targets:
            for mode in MODES:
                self.cell(target, mode, 16, None, WARMUP_S)
        stats: list[CellStats] = []
        for mode in MODES:
            for concurrency in self.plan.concurrencies:
                for target in targets:
                    cell = self.cell(
                        target, mode, concurrency, meters.get(target.name), self.plan.cell_duration_s
                    )
                    stats.append(cell)
                    print(
                        f"  {target.name:8} {mode:6} c={concurrency:<3} {cell.rps:9.0f} req/s  "
                        f"p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  errors {cell.errors}  "
                        f"client CPU {cell.client_cores:.2f} cores",
                        flush=True,
                    )
        return stats

    def slow_streams(self, target: Target, meter: ResourceMeter | None) -> SlowStreamStats:
        plan = self.plan
        body = request_body(
            target.model,
            stream=True,
            mock={"chunks": plan.slow_chunks, "chunk_delay_ms": plan.slow_chunk_delay_ms},
        )
        ideal_s = plan.slow_chunks * plan.slow_chunk_delay_ms / 1000
        start_at = time.time() + 1.0 + 0.0015 * plan.slow_clients
        specs = [
            LoadSpec(
                url=target.completions_url,
                key=target.key,
                body=body,
                stream=True,
                connections=share,
                start_at=start_at,
                expected_chunks=plan.slow_chunks,
                timeout_s=ideal_s + SLOW_STREAM_SLACK_S,
                warm_url=target.warm_url,
                ramp_s=SLOW_STREAM_RAMP_S,
            )
            for share in split(plan.slow_clients, plan.load_processes)
        ]
        if target.name == "gateway":
            # Every worker serves a few streams first: its size before is that of a worker that has
            # served (imports, pools, caches made on first use), not of one that never did.
            self.cell(target, "stream", 16 * self.plan.load_processes, None, WARMUP_S)
            time.sleep(2 * WARMUP_S)
        before = meter.rss_by_pid() if meter is not None else {}
        started = time.time()
        peaks: dict[int, int] = {}
        peak_total: int | None = None  # sampled at once over the processes, so not the sum of `peaks`
        if meter is not None:
            with PeakRss(meter) as peak:
                results, cpu = self._load(specs, meter, ideal_s + RESULT_GRACE_S)
            peaks, peak_total = peak.peak_by_pid, peak.peak
        else:
            results, cpu = self._load(specs, None, ideal_s + RESULT_GRACE_S)
        ended = time.time()
        idle_meter = meter if target.name == "gateway" else None
        after, idle = self._rss_after_idle(idle_meter)
        roles = meter.roles() if meter is not None else {}
        processes = [
            ProcessRss(
                pid=pid,
                role=roles.get(pid, "worker"),
                before_mb=size / 2**20,
                peak_mb=peaks.get(pid, size) / 2**20,
                after_mb=after[pid] / 2**20,
                idle_mb=idle[pid] / 2**20,
            )
            for pid, size in sorted(before.items())
            if pid in after and pid in idle
        ]
        streams = [value for r in results for value in r.latencies_s]
        ttfts = [value for r in results for value in r.ttft_s]
        return SlowStreamStats(
            target=target.name,
            clients=plan.slow_clients,
            chunks=plan.slow_chunks,
            chunk_delay_ms=plan.slow_chunk_delay_ms,
            ramp_s=SLOW_STREAM_RAMP_S,
            completed=len(streams),
            errors=sum(r.errors for r in results),
            stream_p50_s=percentile(streams, 0.5),
            stream_p99_s=percentile(streams, 0.99),
            ttft_p50_ms=percentile(ttfts, 0.5) * 1000,
            ttft_p99_ms=percentile(ttfts, 0.99) * 1000,
            wall_s=ended - max(started, start_at),
            events=sum(r.events for r in results),
            cpu_s=cpu,
            client_cores=client_cores(results),
            rss_before_mb=_total_mb(before),
            rss_peak_mb=peak_total / 2**20 if peak_total is not None else None,
            rss_after_mb=_total_mb(after),
            rss_idle_mb=_total_mb(idle),
            idle_after_s=self.plan.idle_after_s,
            error_samples=[s for r in results for s in r.error_samples][:5],
            processes=processes,
            allocator=idle_meter.allocator() if idle_meter is not None else None,
        )
