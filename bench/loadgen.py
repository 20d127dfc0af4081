"""Load generation, in worker processes so the client's CPU never competes with the process measured."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

REQUEST_TIMEOUT_S = 60.0
MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class LoadSpec:
    """One process's share of a measurement: `connections` clients in a closed loop, or one request each."""

    url: str
    key: str
    body: bytes
    stream: bool
    connections: int
    start_at: float  # wall-clock time at which every process starts measuring together
    duration_s: float = 0.0  # closed loop: measure this long; 0 means one request per connection
    max_requests: int = 1_000_000
    expected_chunks: int | None = None  # streamed content chunks a correct answer carries
    timeout_s: float = REQUEST_TIMEOUT_S  # per request; a slower answer counts as an error
    # One-shot runs open their keep-alive connections with a GET here first, so the measurement
    # is of the streams and not of thousands of TCP handshakes landing in the same millisecond.
    warm_url: str | None = None
    ramp_s: float = 0.0  # one-shot runs: start the clients evenly over this long, as real arrivals would


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    events: int = 0  # SSE `data:` events received, [DONE] included
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0  # this load process's own CPU: near elapsed_s means the client was the limit

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)


def raise_fd_limit() -> None:
    """Thousands of concurrent streams need thousands of sockets; the default soft limit is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run_load(spec: LoadSpec) -> LoadResult:
    """Process-pool entry point."""
    raise_fd_limit()
    return uvloop.run(_run(spec))


async def _run(spec: LoadSpec) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=spec.connections, force_close=False, enable_cleanup_closed=False)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    headers = {"Authorization": f"Bearer {spec.key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        # Open and warm every keep-alive connection before the clock starts.
        if spec.duration_s > 0:
            await asyncio.gather(*(_request(session, spec, LoadResult()) for _ in range(spec.connections)))
        elif spec.warm_url is not None:
            await asyncio.gather(*(_warm(session, spec.warm_url) for _ in range(spec.connections)))
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        result = LoadResult()
        started, cpu_started = time.perf_counter(), time.process_time()
        if spec.duration_s > 0:
            await _closed_loop(session, spec, result, started + spec.duration_s)
        else:
            step = spec.ramp_s / spec.connections
            await asyncio.gather(*(_timed(session, spec, result, i * step) for i in range(spec.connections)))
        result.elapsed_s = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - cpu_started
        return result


async def _warm(session: aiohttp.ClientSession, url: str) -> None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(url) as response:
            await response.read()


async def _closed_loop(
    session: aiohttp.ClientSession, spec: LoadSpec, result: LoadResult, deadline: float
) -> None:
    issued = 0

    async def client() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < spec.max_requests:
            issued += 1
            await _timed(session, spec, result)

    await asyncio.gather(*(client() for _ in range(spec.connections)))


async def _timed(
    session: aiohttp.ClientSession, spec: LoadSpec, result: LoadResult, delay_s: float = 0.0
) -> None:
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    started = time.perf_counter()
    ok = await _request(session, spec, result, started)
    if ok:
        result.latencies_s.append(time.perf_counter() - started)


async def _request(
    session: aiohttp.ClientSession, spec: LoadSpec, result: LoadResult, started: float | None = None
) -> bool:
    try:
        async with session.post(spec.url, data=spec.body) as response:
            if response.status != 200:
                result.error(f"HTTP {response.status}: {(await response.read())[:200]!r}")
                return False
            if not spec.stream:
                body = await response.read()
                if b'"choices"' not in body:
                    result.error(f"unexpected body: {body[:200]!r}")
                    return False
                return True
            return await _read_stream(response, spec, result, started)
    except TimeoutError:
        result.error(f"no complete answer within {spec.timeout_s:g} s")
        return False
    except aiohttp.ClientError as error:
        result.error(f"{type(error).__name__}: {error}")
        return False


async def _read_stream(
    response: aiohttp.ClientResponse, spec: LoadSpec, result: LoadResult, started: float | None
) -> bool:
    content_chunks = 0
    done = False
    pending = b""
    # Whole reads split by hand: aiohttp's per-line iteration costs more CPU than the gateway's relay.
    async for data in response.content.iter_any():
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            result.events += 1
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                continue
            choices = orjson.loads(payload).get("choices") or ()
            if choices and (choices[0].get("delta") or {}).get("content"):
                if content_chunks == 0 and started is not None:
                    result.ttft_s.append(time.perf_counter() - started)
                content_chunks += 1
    if not done:
        result.error(f"stream ended without [DONE] after {content_chunks} content chunks")
        return False
    if spec.expected_chunks is not None and content_chunks != spec.expected_chunks:
        result.error(f"stream carried {content_chunks} content chunks, expected {spec.expected_chunks}")
        return False
    return True
