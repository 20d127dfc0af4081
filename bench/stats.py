"""Aggregated results of the benchmark's measurements, as typed values the report renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bench.loadgen import LoadResult

Mode = Literal["json", "stream"]
TargetName = Literal["gateway", "anthropic", "direct"]  # anthropic: the gateway, translating


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN when nothing succeeded so a broken cell cannot pass for a fast one."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def client_cores(shares: list[LoadResult]) -> float:
    return sum(share.client_cpu_s / share.elapsed_s for share in shares if share.elapsed_s > 0)


@dataclass(frozen=True)
class CellStats:
    """One (target, mode, concurrency) measurement."""

    target: TargetName
    mode: Mode
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    events: int
    cpu_s: float | None
    client_cores: float = 0.0  # load generator's CPU over the cell, in cores
    error_samples: list[str] = field(default_factory=list)

    @classmethod
    def merge(
        cls, target: TargetName, mode: Mode, concurrency: int, shares: list[LoadResult], cpu_s: float | None
    ) -> CellStats:
        latencies = [value for share in shares for value in share.latencies_s]
        return cls(
            target=target,
            mode=mode,
            concurrency=concurrency,
            requests=len(latencies),
            errors=sum(share.errors for share in shares),
            rps=sum(len(share.latencies_s) / share.elapsed_s for share in shares if share.elapsed_s > 0),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            events=sum(share.events for share in shares),
            cpu_s=cpu_s,
            client_cores=client_cores(shares),
            error_samples=[sample for share in shares for sample in share.error_samples][:5],
        )

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1000

    @property
    def cpu_us_per_chunk(self) -> float | None:
        """All-in: the request's fixed cost is spread over its chunks."""
        if self.cpu_s is None or self.mode != "stream" or not self.events:
            return None
        return self.cpu_s / self.events * 1_000_000

    def marginal_cpu_us_per_chunk(self, json_cell: CellStats | None) -> float | None:
        """What one more chunk costs: this stream cell's CPU per request above the JSON cell's, per chunk."""
        mine, theirs = self.cpu_ms_per_request, json_cell.cpu_ms_per_request if json_cell else None
        if mine is None or theirs is None or not self.events or not self.requests:
            return None
        return (mine - theirs) * 1000 / (self.events / self.requests)


IDLE_TARGET_PCT = 15.0  # after a load and a minute idle, a worker is within this of its size before


@dataclass(frozen=True)
class ProcessRss:
    """One gateway process's RSS around the slow streams, in MB."""

    pid: int
    role: str  # master, worker, helper
    before_mb: float
    peak_mb: float
    after_mb: float
    idle_mb: float

    @property
    def idle_growth_pct(self) -> float:
        return (self.idle_mb / self.before_mb - 1) * 100 if self.before_mb else 0.0

    @property
    def within_target(self) -> bool:
        return self.idle_growth_pct <= IDLE_TARGET_PCT


@dataclass(frozen=True)
class SlowStreamStats:
    """Many concurrent slow streams: does every one finish, and on time?"""

    target: TargetName
    clients: int
    chunks: int
    chunk_delay_ms: int
    ramp_s: float
    completed: int
    errors: int
    stream_p50_s: float
    stream_p99_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    wall_s: float
    rss_before_mb: float | None
    rss_peak_mb: float | None
    events: int = 0
    cpu_s: float | None = None
    client_cores: float = 0.0
    rss_after_mb: float | None = None
    rss_idle_mb: float | None = None
    idle_after_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    processes: list[ProcessRss] = field(default_factory=list)
    allocator: str | None = None  # what the gateway's workers allocate with (jemalloc, pymalloc)

    @property
    def ideal_s(self) -> float:
        return self.chunks * self.chunk_delay_ms / 1000

    @property
    def idle_growth_pct(self) -> float | None:
        """How far above its size before the run the process is after idling (target ≤ 15 %)."""
        if self.rss_idle_mb is None or not self.rss_before_mb:
            return None
        return (self.rss_idle_mb / self.rss_before_mb - 1) * 100

    @property
    def workers_within_target(self) -> bool | None:
        """Every worker back within IDLE_TARGET_PCT of its size before, after idling (None: not measured)."""
        workers = [p for p in self.processes if p.role == "worker"]
        return all(p.within_target for p in workers) if workers else None

    @property
    def cpu_us_per_chunk(self) -> float | None:
        return None if self.cpu_s is None or not self.events else self.cpu_s / self.events * 1_000_000

    @property
    def cpu_cores(self) -> float | None:
        """Average cores busy: near the host's core count means the run was CPU-bound."""
        return None if self.cpu_s is None or self.wall_s <= 0 else self.cpu_s / self.wall_s
