"""The pooled upstream HTTP transport: httpx's request and response types on aiohttp's connection
pool, one per worker event loop.

Measured per plain call against the simulator on this 2-core box (CPU per request): httpx's own
client and pool ~1.5 ms (its pool scans every connection per request), httpx.AsyncClient over
httpx-aiohttp's transport ~0.7 ms, the transport called directly ~0.5 ms, bare aiohttp ~0.35 ms.
Calling the transport directly keeps httpx's Request/Response (and httpx-sse for streams) while
skipping the client's per-request auth, redirect, cookie and event-hook machinery, which the
gateway never uses.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

_transports: dict[int, AiohttpTransport] = {}


def _session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=settings.MESH_UPSTREAM_MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=30,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


def _transport() -> AiohttpTransport:
    loop_id = id(asyncio.get_running_loop())
    transport = _transports.get(loop_id)
    if transport is None:
        transport = _transports[loop_id] = AiohttpTransport(client=_session)
    return transport


async def upstream_send(*, url: str, headers: dict[str, str], body: bytes, timeout: float) -> httpx.Response:
    """POST `body` and return as soon as the headers arrived (read the body or stream it after).

    `timeout` bounds connecting (capped by MESH_UPSTREAM_CONNECT_TIMEOUT_S) and each silent gap
    between reads; the caller bounds the whole call with asyncio.timeout.
    """
    connect = min(timeout, settings.MESH_UPSTREAM_CONNECT_TIMEOUT_S)
    request = httpx.Request(
        "POST",
        url,
        headers=headers,
        content=body,
        extensions={"timeout": {"connect": connect, "read": timeout, "write": timeout, "pool": connect}},
    )
    return await _transport().handle_async_request(request)
