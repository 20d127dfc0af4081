"""Calling providers with fallback: the next candidate is tried only for retryable errors,
and for streams only before the first byte reached the client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from meshplatform.errors import GatewayError, GatewayTimeout, UpstreamError
from routing.http_client import (
    UpstreamConnectTimeout,
    UpstreamResponse,
    UpstreamTransportError,
    upstream_send,
)
from routing.providers.base import Completion, UpstreamCall
from routing.resolve import Candidate
from usage.ledger import Attempt


@dataclass(slots=True)
class OpenStream:
    """A stream whose first chunk already arrived (so fallback is no longer possible)."""

    candidate: Candidate
    response: UpstreamResponse
    first_chunk: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]


def timeout_error(
    candidate: Candidate, timeout: float, failure: BaseException | None = None
) -> GatewayTimeout:
    """504 naming the limit that actually fired: the connect timeout or the request's own."""
    if isinstance(failure, UpstreamConnectTimeout):
        timeout = min(timeout, settings.MESH_UPSTREAM_CONNECT_TIMEOUT_S)
        what = f"could not be connected to within {timeout:g}s"
    else:
        what = f"did not answer within {timeout:g}s"
    return GatewayTimeout(
        f"The {candidate.adapter.name} upstream {what}.",
        provider_error=candidate.adapter.provider_error(None, what),
    )


def _transport_error(candidate: Candidate, error: UpstreamTransportError) -> UpstreamError:
    return UpstreamError(
        f"Could not reach the {candidate.adapter.name} upstream.",
        provider_error=candidate.adapter.provider_error(None, type(error).__name__),
        retryable=True,
    )


async def _complete_once(candidate: Candidate, body: dict[str, Any], timeout: float) -> Completion:
    call = UpstreamCall(
        upstream_model=candidate.entry.upstream_name,
        body=body,
        stream=False,
        context_window=candidate.entry.context_window,
    )
    request = candidate.adapter.build_request(call)
    try:
        async with asyncio.timeout(timeout):
            response = await upstream_send(
                url=request.url, headers=request.headers, body=request.body, timeout=timeout
            )
            content = await response.aread()
    except TimeoutError as failure:  # asyncio.timeout's, or a connect/read timeout
        raise timeout_error(candidate, timeout, failure) from None
    except UpstreamTransportError as error:
        raise _transport_error(candidate, error) from None
    if response.status_code >= 300:
        raise candidate.adapter.map_error(response.status_code, content)
    return candidate.adapter.parse_completion(content, call)


async def _open_once(candidate: Candidate, body: dict[str, Any], timeout: float) -> OpenStream:
    call = UpstreamCall(
        upstream_model=candidate.entry.upstream_name,
        body=body,
        stream=True,
        context_window=candidate.entry.context_window,
    )
    request = candidate.adapter.build_request(call)
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(timeout):
            response = await upstream_send(
                url=request.url, headers=request.headers, body=request.body, timeout=timeout
            )
            if response.status_code >= 300:
                raise candidate.adapter.map_error(response.status_code, await response.aread())
            chunks = candidate.adapter.iter_chunks(response, call)
            first = await anext(chunks)
    except StopAsyncIteration:
        await _close(response)
        raise UpstreamError(
            f"The {candidate.adapter.name} upstream ended the stream without any data.",
            provider_error=candidate.adapter.provider_error(200, "empty stream"),
            retryable=True,
        ) from None
    except TimeoutError as failure:  # asyncio.timeout's, or a connect/read timeout
        await _close(response)
        raise timeout_error(candidate, timeout, failure) from None
    except UpstreamTransportError as error:
        await _close(response)
        raise _transport_error(candidate, error) from None
    except BaseException:
        await _close(response)
        raise
    return OpenStream(candidate=candidate, response=response, first_chunk=first, rest=chunks)


async def _close(response: UpstreamResponse | None) -> None:
    if response is not None:
        await response.aclose()


T = TypeVar("T")


async def _with_fallback(
    candidates: list[Candidate],
    attempts: list[Attempt],
    try_once: Callable[[Candidate], Awaitable[T]],
) -> T:
    """The first candidate's success; a non-retryable error (or the last one) stops the fallback."""
    for candidate in candidates:
        started = time.monotonic()
        try:
            result = await try_once(candidate)
        except GatewayError as error:
            attempts.append(_attempt(candidate, started, error))
            if not error.retryable or candidate is candidates[-1]:
                raise
            continue
        attempts.append(_attempt(candidate, started, None))
        return result
    raise AssertionError("candidates_resolve never returns an empty list")


async def complete_with_fallback(
    candidates: list[Candidate], body: dict[str, Any], *, timeout: float, attempts: list[Attempt]
) -> tuple[Candidate, Completion]:
    async def once(candidate: Candidate) -> tuple[Candidate, Completion]:
        return candidate, await _complete_once(candidate, body, timeout)

    return await _with_fallback(candidates, attempts, once)


async def open_stream_with_fallback(
    candidates: list[Candidate], body: dict[str, Any], *, timeout: float, attempts: list[Attempt]
) -> OpenStream:
    """Fallback is only possible until the first chunk: `_open_once` returns once it arrived."""
    return await _with_fallback(candidates, attempts, lambda candidate: _open_once(candidate, body, timeout))


def _attempt(candidate: Candidate, started: float, error: GatewayError | None) -> Attempt:
    status = None
    if error is not None and error.provider_error is not None:
        status = error.provider_error.get("status")
    return Attempt(
        model=candidate.entry.model_id,
        provider=candidate.adapter.name,
        status=200 if error is None else status,
        error_code=None if error is None else error.code,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
