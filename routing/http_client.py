"""The pooled upstream HTTP client: aiohttp's connection pool, one per worker event loop.

Measured per plain call against the simulator on this 2-core box (CPU per request): httpx's own
client and pool ~1.5 ms (its pool scans every connection per request), httpx.AsyncClient over
httpx-aiohttp's transport ~0.7 ms, that transport called directly ~0.5 ms, aiohttp alone ~0.35 ms.
Per relayed stream chunk, httpx's response adds five async generators (raw → bytes → text →
lines → events) on top of aiohttp's read. So the proxy path speaks aiohttp directly, behind the
small `UpstreamResponse` below, and names transport failures with its own three exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
from django.conf import settings

from meshplatform.loops import LoopLocal


class UpstreamTransportError(Exception):
    """The upstream could not be reached, or its connection broke."""


class UpstreamConnectError(UpstreamTransportError):
    """No connection could be made (refused, unreachable, DNS): the request was never sent."""


class UpstreamConnectTimeout(UpstreamConnectError, TimeoutError):
    """No connection (or free pool slot) within the connect timeout."""


class UpstreamReadTimeout(UpstreamTransportError, TimeoutError):
    """Connected, but the upstream stayed silent longer than the request's timeout."""


def _transport_failure(error: Exception) -> UpstreamTransportError:
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return UpstreamConnectTimeout(str(error) or "connect timeout")
    if isinstance(error, aiohttp.ServerTimeoutError):
        return UpstreamReadTimeout(str(error) or "read timeout")
    if isinstance(error, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"{type(error).__name__}: {error}")
    return UpstreamTransportError(f"{type(error).__name__}: {error}")


class UpstreamResponse:
    """An upstream answer whose status and headers arrived; read or stream the body, then close."""

    __slots__ = ("_response", "status_code")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive)."""
        return self._response.headers

    async def aread(self) -> bytes:
        try:
            return await self._response.read()
        except aiohttp.ClientError as error:
            raise _transport_failure(error) from error

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (each read, whatever its size)."""
        content = self._response.content
        try:
            async for data in content.iter_any():
                yield data
        except aiohttp.ClientError as error:
            # aiohttp's reader raises a broken connection's error before the bytes that arrived
            # with it (readany checks the exception first). Those bytes were sent to the caller's
            # request and may hold whole events: hand them on, then report the break (private reader API,
            # aiohttp pinned; tests/routing/test_upstream_client.py fails if it changes).
            if content._buffer:
                yield content._read_nowait(-1)
            raise _transport_failure(error) from error

    async def aclose(self) -> None:
        """Give the connection back, or drop it if the body was not read to its end (which also
        tells the upstream to stop generating)."""
        self._response.release()
        await self._response.wait_for_close()


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=settings.MESH_UPSTREAM_MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=30,
        ttl_dns_cache=300,
    )
    # No cookie jar: one upstream's cookies must never ride along on another tenant's request
    # (and skipping the jar saves its per-request filtering).
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )


_sessions = LoopLocal(_new_session)


async def upstream_send(
    *, url: str, headers: dict[str, str], body: bytes, timeout: float
) -> UpstreamResponse:
    """POST `body` and return as soon as the headers arrived (read the body or stream it after).

    `timeout` bounds connecting (capped by MESH_UPSTREAM_CONNECT_TIMEOUT_S) and each silent gap
    between reads; the caller bounds the whole call with asyncio.timeout.
    """
    connect = min(timeout, settings.MESH_UPSTREAM_CONNECT_TIMEOUT_S)
    try:
        response = await _sessions.get().post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=connect, sock_read=timeout
            ),
        )
    except aiohttp.ClientError as error:
        raise _transport_failure(error) from error
    return UpstreamResponse(response)


async def upstream_session_close() -> None:
    """Close this loop's pool (for a loop that ends while the process lives on, as tests' do)."""
    await _sessions.get().close()
