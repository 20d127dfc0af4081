"""A rolling restart of the web workers (SIGHUP to the uvicorn master, README's deploy sequence) while
200 streams are open: every client gets its whole stream and `[DONE]`, the ledger holds exactly one
final entry per stream, and each worker was replaced while it still held streams."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import psutil
import pytest
import redis
from django.conf import settings

from keys.services import CreatedKey
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.conftest import chat_body, gateway_env
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.waiting import wait_until
from usage.models import UsageEvent
from usage.recording import OPEN

STREAMS = 200
CHUNK_DELAY_MS = 500
# SIGHUP replaces the oldest worker first, and the next only once the first has exited. So the
# streams the first one holds must outlast its replacement's start (10 s), and those of the second
# the first one's drain plus its own replacement's start (22 s), for each to be replaced mid-stream.
FIRST_CHUNKS, SECOND_CHUNKS = 20, 44


@dataclass
class Stream:
    """One client with one kept-alive connection, so the worker holding it is known in advance."""

    client: httpx.AsyncClient
    port: int = 0
    pid: int = 0
    chunks: int = 0
    request_id: str = ""
    content: list[str] = field(default_factory=list)
    done: bool = False


@pytest.fixture
def rolling_gateway(
    simulator: SimulatorServer, transactional_db: None, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    # No stream is cut: the drain waits for all of them.
    env = gateway_env(simulator, MESH_DRAIN_NOTICE_S="0.5", MESH_DRAIN_TIMEOUT_S="60")
    server = GatewayServer(env=env, workers=2)
    server.start()
    yield server
    server.stop()
    ledger_flusher.pause()


async def _client_port(stream: Stream) -> int:
    response = await stream.client.get("/healthz")
    assert response.status_code == 200
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def _connection_holders(pids: list[int]) -> dict[int, int]:
    """Client port → the worker process holding that connection."""
    return {
        connection.raddr.port: pid
        for pid in pids
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.raddr
    }


async def _read(stream: Stream, token: str) -> None:
    body = chat_body(stream=True, mock={"chunks": stream.chunks, "chunk_delay_ms": CHUNK_DELAY_MS})
    headers = {"Authorization": f"Bearer {token}"}
    async with stream.client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        # Still the connection whose worker was looked up (not a new one after a keep-alive timeout).
        assert response.extensions["network_stream"].get_extra_info("client_addr")[1] == stream.port
        stream.request_id = response.headers["X-Request-Id"]
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                stream.done = True
            elif line.startswith("data: {"):
                choices = orjson.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    stream.content.append(choices[0]["delta"]["content"])


async def _restart_under_streams(
    server: GatewayServer, token: str
) -> tuple[list[Stream], list[BaseException | None]]:
    """Open the streams (the first worker's short, the second's long), SIGHUP the master once all
    are open, and read every stream to its end."""
    first, second = server.worker_pids()
    one_connection = httpx.Limits(max_connections=1)
    tls = ssl.create_default_context()  # unused over http, but each client would load its own (~50 ms)
    streams = [
        Stream(httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=one_connection, verify=tls))
        for _ in range(STREAMS)
    ]
    try:
        ports = await asyncio.gather(*(_client_port(stream) for stream in streams))
        holders = _connection_holders([first, second])
        for stream, port in zip(streams, ports, strict=True):
            stream.port, stream.pid = port, holders[port]
            stream.chunks = FIRST_CHUNKS if stream.pid == first else SECOND_CHUNKS
        reads = [asyncio.create_task(_read(stream, token)) for stream in streams]
        deadline = asyncio.get_running_loop().time() + 20
        while not all(stream.request_id for stream in streams) and not any(task.done() for task in reads):
            assert asyncio.get_running_loop().time() < deadline, "the 200 streams did not open in 20 s"
            await asyncio.sleep(0.05)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)  # uvicorn: replace the workers one at a time
        results = await asyncio.gather(*reads, return_exceptions=True)
    finally:
        await asyncio.gather(*(stream.client.aclose() for stream in streams))
    return streams, results


def _drain_figures(log: str, pid: int) -> tuple[int, bool]:
    """What the worker logged: requests in flight when SIGTERM reached it, and whether it drained."""
    began = re.search(rf"worker {pid} draining: (\d+) requests in flight", log)
    assert began, f"worker {pid} logged no drain:\n{log[-3000:]}"
    return int(began.group(1)), f"worker {pid} drained" in log


def test_a_rolling_restart_under_200_open_streams_fails_none_and_bills_each_once(
    rolling_gateway: GatewayServer, acme_key: CreatedKey
) -> None:
    originals = rolling_gateway.worker_pids()
    assert len(originals) == 2

    streams, results = asyncio.run(_restart_under_streams(rolling_gateway, acme_key.plaintext))

    assert [result for result in results if result is not None] == []  # no stream failed
    assert all(stream.done and len(stream.content) == stream.chunks for stream in streams)
    held = {pid: sum(stream.pid == pid for stream in streams) for pid in originals}
    assert all(held.values()), f"the kernel gave one worker every connection: {held}"

    def replaced() -> list[int] | None:
        pids = rolling_gateway.worker_pids()
        return pids if len(pids) == 2 and not set(pids) & set(originals) else None

    wait_until(replaced, timeout=30, what="two new workers in place of the original two")
    # Both original workers were told to stop while they held streams, and drained (the second
    # may still be settling when its last stream ends: its log is read once it has exited).
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in originals), timeout=30, what="exits")
    log = rolling_gateway.output()
    for pid in originals:
        in_flight, drained = _drain_figures(log, pid)
        assert in_flight > 0 and drained, (pid, in_flight, drained)

    request_ids = {stream.request_id for stream in streams}
    assert len(request_ids) == STREAMS

    def final_rows() -> list[UsageEvent] | None:
        rows = list(UsageEvent.objects.all())
        return rows if len(rows) == STREAMS and not any(row.provisional for row in rows) else None

    rows = wait_until(final_rows, timeout=30, what="200 final ledger entries")
    assert {row.request_id for row in rows} == request_ids  # one each: none missing, none twice
    chunks = {stream.request_id: stream.chunks for stream in streams}
    for row in rows:
        assert (row.http_status, row.error_code, row.cancelled) == (200, "", False)
        assert row.streamed and not row.tokens_estimated and row.completion_tokens == chunks[row.request_id]
    assert redis.Redis.from_url(settings.REDIS_URL).hlen(OPEN) == 0  # no in-flight note left behind
