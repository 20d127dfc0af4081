"""Calling providers with retries and fallback.

A failure where the upstream certainly did not run the request (429, 5xx, 529, no connection) is
retried on the same provider (MESH_UPSTREAM_RETRIES times, jittered exponential backoff or the
upstream's Retry-After, within the candidate's timeout); then the next candidate is tried for
retryable errors. For streams both happen only before the first chunk reached the client; a read
timeout or a broken connection after the request was sent is never retried on the same provider
(the upstream may have run it). Every try is an `Attempt` in the usage event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from meshplatform import tracing
from meshplatform.errors import GatewayError, GatewayTimeout, UpstreamError
from routing.http_client import (
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamResponse,
    UpstreamTransportError,
    upstream_send,
)
from routing.providers.base import Completion, UpstreamCall, UpstreamRequest
from routing.resolve import Candidate
from usage.ledger import Attempt


@dataclass(slots=True)
class OpenStream:
    """A stream whose first chunk already arrived (so fallback is no longer possible)."""

    candidate: Candidate
    response: UpstreamResponse
    first_chunk: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]
    trace: tracing.AttemptSpan | None = None  # its attempt's span, ended when the stream ends


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
        # Not connected: nothing was sent. A read timeout: the upstream may be running it.
        retry_safe=isinstance(failure, UpstreamConnectTimeout),
    )


def _transport_error(candidate: Candidate, error: UpstreamTransportError) -> UpstreamError:
    return UpstreamError(
        f"Could not reach the {candidate.adapter.name} upstream.",
        provider_error=candidate.adapter.provider_error(None, type(error).__name__),
        retryable=True,
        retry_safe=isinstance(error, UpstreamConnectError),
    )


def _call(candidate: Candidate, body: dict[str, Any], *, stream: bool) -> UpstreamCall:
    entry = candidate.entry
    return UpstreamCall(
        upstream_model=entry.upstream_name,
        body=body,
        stream=stream,
        context_window=entry.context_window,
        max_output_tokens=entry.max_output_tokens,
        reasoning=entry.reasoning,
    )


async def _complete_once(
    candidate: Candidate, body: dict[str, Any], timeout: float, trace: tracing.AttemptSpan | None = None
) -> Completion:
    call = _call(candidate, body, stream=False)
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
        raise candidate.adapter.map_error(response.status_code, content, response.headers)
    completion = candidate.adapter.parse_completion(content, call)
    usage = completion.usage
    tracing.attempt_answered(
        trace, completion.payload, input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens
    )
    return completion


async def _open_once(
    candidate: Candidate, body: dict[str, Any], timeout: float, trace: tracing.AttemptSpan | None = None
) -> OpenStream:
    call = _call(candidate, body, stream=True)
    request = candidate.adapter.build_request(call)
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(timeout):
            response = await upstream_send(
                url=request.url, headers=request.headers, body=request.body, timeout=timeout
            )
            if response.status_code >= 300:
                content = await response.aread()
                raise candidate.adapter.map_error(response.status_code, content, response.headers)
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
    rest = tracing.stream_observed(trace, first, chunks)
    return OpenStream(candidate=candidate, response=response, first_chunk=first, rest=rest, trace=trace)


async def _close(response: UpstreamResponse | None) -> None:
    if response is not None:
        await response.aclose()


T = TypeVar("T")


async def _with_fallback(
    candidates: list[Candidate],
    attempts: list[Attempt],
    timeout: float,
    try_once: Callable[[Candidate, float, tracing.AttemptSpan | None], Awaitable[T]],
) -> T:
    """The first candidate's success; a non-retryable error (or the last one) stops the fallback."""
    for candidate in candidates:
        try:
            return await _with_retries(candidate, attempts, timeout, try_once)
        except GatewayError as error:
            if not error.retryable or candidate is candidates[-1]:
                raise
    raise AssertionError("candidates_resolve never returns an empty list")


async def _with_retries(
    candidate: Candidate,
    attempts: list[Attempt],
    timeout: float,
    try_once: Callable[[Candidate, float, tracing.AttemptSpan | None], Awaitable[T]],
) -> T:
    """One candidate, asked again after failures that certainly did not run the request, while
    the next wait still ends inside its timeout. (A hand-written loop, not tenacity: each try is
    recorded, Retry-After is honoured, and the success path must cost nothing.)"""
    deadline = time.monotonic() + timeout
    retry = 0
    while True:
        started = time.monotonic()
        trace = tracing.attempt_start(
            provider=candidate.adapter.name,
            model=candidate.entry.upstream_name,
            mesh_model=candidate.entry.model_id,
            number=len(attempts) + 1,
        )
        try:
            result = await try_once(candidate, timeout if retry == 0 else deadline - started, trace)
        except GatewayError as error:
            tracing.attempt_failed(trace, error)
            attempts.append(_attempt(candidate, started, error))
            wait = _retry_wait(error, retry)
            if wait is None or time.monotonic() + wait >= deadline:
                raise
            await asyncio.sleep(wait)
            retry += 1
            continue
        except BaseException as error:  # cancelled, or a bug: the span ends all the same
            tracing.attempt_failed(trace, error)
            raise
        attempts.append(_attempt(candidate, started, None))
        return result


def _retry_wait(error: GatewayError, retry: int) -> float | None:
    """Seconds before asking the same provider again, or None when it must not be asked: full
    jitter over an exponential backoff, or the upstream's own Retry-After when it gave one."""
    if not error.retry_safe or retry >= settings.MESH_UPSTREAM_RETRIES:
        return None
    max_wait = settings.MESH_UPSTREAM_RETRY_MAX_WAIT_S
    if error.retry_after_seconds is not None:
        return float(error.retry_after_seconds) if error.retry_after_seconds <= max_wait else None
    return random.uniform(0, min(max_wait, settings.MESH_UPSTREAM_RETRY_BACKOFF_S * 2**retry))


async def complete_with_fallback(
    candidates: list[Candidate], body: dict[str, Any], *, timeout: float, attempts: list[Attempt]
) -> tuple[Candidate, Completion]:
    async def once(
        candidate: Candidate, budget: float, trace: tracing.AttemptSpan | None
    ) -> tuple[Candidate, Completion]:
        return candidate, await _complete_once(candidate, body, budget, trace)

    return await _with_fallback(candidates, attempts, timeout, once)


async def open_stream_with_fallback(
    candidates: list[Candidate], body: dict[str, Any], *, timeout: float, attempts: list[Attempt]
) -> OpenStream:
    """Retries and fallback are only possible until the first chunk: `_open_once` returns once it arrived."""
    return await _with_fallback(
        candidates,
        attempts,
        timeout,
        lambda candidate, budget, trace: _open_once(candidate, body, budget, trace),
    )


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


async def upstream_post(candidate: Candidate, request: UpstreamRequest, timeout: float) -> bytes:
    """One non-streamed call (embeddings, images): the 2xx body, or the typed error for the
    fallback loop (a timeout, an unreachable upstream, the upstream's own error answer)."""
    try:
        async with asyncio.timeout(timeout):
            response = await upstream_send(
                url=request.url, headers=request.headers, body=request.body, timeout=timeout
            )
            content = await response.aread()
    except TimeoutError as failure:
        raise timeout_error(candidate, timeout, failure) from None
    except UpstreamTransportError as error:
        raise _transport_error(candidate, error) from None
    if response.status_code >= 300:
        raise candidate.adapter.map_error(response.status_code, content, response.headers)
    return content


async def call_with_fallback(
    candidates: list[Candidate],
    attempts: list[Attempt],
    timeout: float,
    try_once: Callable[[Candidate, float], Awaitable[T]],
) -> T:
    """`try_once` with the same retries and fallback as completions (each try an `Attempt`, and an
    attempt span when tracing is on)."""

    async def once(candidate: Candidate, timeout_s: float, _trace: tracing.AttemptSpan | None) -> T:
        return await try_once(candidate, timeout_s)

    return await _with_fallback(candidates, attempts, timeout, once)
