"""Renders benchmark results as a Markdown report (for issue notes) and as JSON (for machines)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import orjson

from bench.stats import IDLE_TARGET_PCT, CellStats, SlowStreamStats


@dataclasses.dataclass(frozen=True)
class BenchReport:
    meta: dict[str, Any]
    cells: list[CellStats]
    slow: list[SlowStreamStats]
    gateway_peak_rss_mb: float | None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f} %"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _get(cell: CellStats | None, name: str) -> float | None:
    value: float | None = None if cell is None else getattr(cell, name)
    return value


def _marginal(stream_cell: CellStats | None, json_cell: CellStats | None) -> str:
    if stream_cell is None or stream_cell.mode != "stream":
        return "n/a"
    return _pair(stream_cell.cpu_us_per_chunk, stream_cell.marginal_cpu_us_per_chunk(json_cell), 0)


def _pair(a: float | None, b: float | None, digits: int = 1) -> str:
    return f"{_num(a, digits)} / {_num(b, digits)}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def _translation_table(by_key: dict[Any, CellStats], meta: dict[str, Any]) -> list[str]:
    """The anthropic/* cell (same gateway, translating to and from Anthropic's Messages API) beside
    the openai/* cell: the translation's CPU is the difference."""
    keys = sorted({(mode, conc) for target, mode, conc in by_key if target == "anthropic"})
    if not keys:
        return []
    lines = [
        "",
        "Translation (anthropic/* cell vs openai/* cell, same gateway):",
        "",
        "| mode | conc | openai req/s | anthropic req/s | CPU ms/req openai / anthropic | ratio "
        "| CPU µs/chunk openai / anthropic | ratio | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, concurrency in keys:
        openai, anthropic = (
            by_key.get(("gateway", mode, concurrency)),
            by_key.get(("anthropic", mode, concurrency)),
        )
        label = "JSON" if mode == "json" else f"SSE ×{meta['stream_chunks']}"
        cpu_o, cpu_a = _get(openai, "cpu_ms_per_request"), _get(anthropic, "cpu_ms_per_request")
        chunk_o, chunk_a = _get(openai, "cpu_us_per_chunk"), _get(anthropic, "cpu_us_per_chunk")
        lines.append(
            f"| {label} | {concurrency} | {_num(_get(openai, 'rps'), 0)} | {_num(_get(anthropic, 'rps'), 0)} "
            f"| {_pair(cpu_o, cpu_a, 2)} | {_ratio(cpu_a, cpu_o)} | {_pair(chunk_o, chunk_a, 0)} "
            f"| {_ratio(chunk_a, chunk_o)} | {anthropic.errors if anthropic else '-'} |"
        )
    return lines


def _process_rss_table(slow: SlowStreamStats) -> list[str]:
    """Each gateway process's RSS around the slow streams, and whether every worker came back
    within IDLE_TARGET_PCT of its size before after idling."""
    if not slow.processes:
        return []
    lines = [
        "",
        f"Gateway RSS per process ({slow.allocator or 'allocator unknown'}), MB: before the slow streams, "
        f"peak, right after, {slow.idle_after_s:g} s idle after:",
        "",
        "| process | before | peak | after | idle | idle vs before |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p.role} {p.pid} | {p.before_mb:,.0f} | {p.peak_mb:,.0f} | {p.after_mb:,.0f} | {p.idle_mb:,.0f} "
        f"| {_pct(p.idle_growth_pct)} |"
        for p in slow.processes
    ]
    verdict = slow.workers_within_target
    if verdict is not None:
        lines += [
            "",
            f"Workers within {IDLE_TARGET_PCT:g} % of their size before after {slow.idle_after_s:g} s idle: "
            + ("yes" if verdict else "**no**"),
        ]
    return lines


def markdown(report: BenchReport) -> str:
    meta = report.meta
    lines = [
        f"### Mesh gateway benchmark ({meta['profile']}, {meta['started_at']})",
        "",
        f"Gateway: {meta['gateway']} (allocator: {meta.get('allocator', 'unknown')}). "
        f"Upstream: simulator with {meta['simulator_workers']} workers. "
        f"Load: aiohttp keep-alive clients in {meta['load_processes']} processes, "
        f"{meta['cell_duration_s']} s per cell. "
        f"Host: {meta['cpus']} CPUs (load average {meta['load_avg_1m_at_start']} at start), "
        f"Python {meta['python']}.",
        "",
        "| mode | conc | direct req/s | gateway req/s | direct p50 / p99 ms | gateway p50 / p99 ms "
        "| overhead p50 / p99 ms | CPU ms/req gateway / sim | gateway CPU µs/chunk all-in / marginal "
        "| errors gw / direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(c.target, c.mode, c.concurrency): c for c in report.cells}
    for mode, concurrency in sorted({(c.mode, c.concurrency) for c in report.cells}):
        gateway = by_key.get(("gateway", mode, concurrency))
        direct = by_key.get(("direct", mode, concurrency))
        label = "JSON" if mode == "json" else f"SSE ×{meta['stream_chunks']}"
        gateway_p50, gateway_p99 = _get(gateway, "p50_ms"), _get(gateway, "p99_ms")
        direct_p50, direct_p99 = _get(direct, "p50_ms"), _get(direct, "p99_ms")
        overhead_p50 = (
            gateway_p50 - direct_p50 if gateway_p50 is not None and direct_p50 is not None else None
        )
        overhead_p99 = (
            gateway_p99 - direct_p99 if gateway_p99 is not None and direct_p99 is not None else None
        )
        lines.append(
            f"| {label} | {concurrency} | {_num(_get(direct, 'rps'), 0)} | {_num(_get(gateway, 'rps'), 0)} "
            f"| {_pair(direct_p50, direct_p99, 2)} | {_pair(gateway_p50, gateway_p99, 2)} "
            f"| {_pair(overhead_p50, overhead_p99, 2)} "
            f"| {_pair(_get(gateway, 'cpu_ms_per_request'), _get(direct, 'cpu_ms_per_request'), 2)} "
            f"| {_marginal(gateway, by_key.get(('gateway', 'json', concurrency)))} "
            f"| {gateway.errors if gateway else '-'} / {direct.errors if direct else '-'} |"
        )
    lines += _translation_table(by_key, meta)
    lines += [
        "",
        f"Gateway peak RSS during the cells (master + workers): {_num(report.gateway_peak_rss_mb, 0)} MB",
    ]
    if report.slow:
        first = report.slow[0]
        lines += [
            "",
            f"Slow streams: {first.clients} concurrent clients on warm keep-alive connections, started over "
            f"{first.ramp_s:g} s, each reading {first.chunks} chunks {first.chunk_delay_ms} ms apart "
            f"(ideal {first.ideal_s:.1f} s, TTFT {first.chunk_delay_ms} ms).",
            "",
            "| target | completed | errors | stream p50 / p99 s | TTFT p50 / p99 ms | wall s "
            "| RSS before → peak → after → idle MB | idle vs before | CPU cores busy | CPU µs/chunk "
            "| client CPU cores |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {slow.target} | {slow.completed} / {slow.clients} | {slow.errors} "
            f"| {_pair(slow.stream_p50_s, slow.stream_p99_s, 2)} "
            f"| {_pair(slow.ttft_p50_ms, slow.ttft_p99_ms, 0)} "
            f"| {_num(slow.wall_s, 1)} | {_num(slow.rss_before_mb, 0)} → {_num(slow.rss_peak_mb, 0)} "
            f"→ {_num(slow.rss_after_mb, 0)} → {_num(slow.rss_idle_mb, 0)} "
            f"| {_pct(slow.idle_growth_pct)} "
            f"| {_num(slow.cpu_cores, 2)} | {_num(slow.cpu_us_per_chunk, 0)} | {_num(slow.client_cores, 2)} |"
            for slow in report.slow
        ]
        for slow in report.slow:
            lines += _process_rss_table(slow)
    samples = [
        (f"{c.target} {c.mode} c={c.concurrency}", s) for c in report.cells for s in c.error_samples[:2]
    ]
    samples += [(f"{slow.target} slow streams", s) for slow in report.slow for s in slow.error_samples[:3]]
    if samples:
        lines += ["", "Error samples:", *(f"- {where}: `{sample[:300]}`" for where, sample in samples[:12])]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def write_json(report: BenchReport, path: Path) -> None:
    json_cells = {(c.target, c.concurrency): c for c in report.cells if c.mode == "json"}
    cells = [
        {
            **dataclasses.asdict(cell),
            "cpu_ms_per_request": cell.cpu_ms_per_request,
            "cpu_us_per_chunk": cell.cpu_us_per_chunk,
            "marginal_cpu_us_per_chunk": cell.marginal_cpu_us_per_chunk(
                json_cells.get((cell.target, cell.concurrency))
            )
            if cell.mode == "stream"
            else None,
        }
        for cell in report.cells
    ]
    slow = [
        {
            **dataclasses.asdict(stats),
            "ideal_s": stats.ideal_s,
            "idle_growth_pct": stats.idle_growth_pct,
            "workers_within_target": stats.workers_within_target,
            "cpu_us_per_chunk": stats.cpu_us_per_chunk,
            "cpu_cores": stats.cpu_cores,
        }
        for stats in report.slow
    ]
    payload = {
        "meta": report.meta,
        "cells": cells,
        "slow": slow,
        "gateway_peak_rss_mb": report.gateway_peak_rss_mb,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(_jsonable(payload), option=orjson.OPT_INDENT_2) + b"\n")
