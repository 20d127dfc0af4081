"""When and how long to wait before retrying: 429 (honouring Retry-After), 502, 503, 504,
connection errors, and a 409 saying the call's first attempt is still running on the gateway
(`idempotency_in_progress`), with exponential backoff and jitter (tenacity does the looping)."""

from __future__ import annotations

import random

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from meshapi._errors import APIConnectionError, APIStatusError, retry_after_from_headers

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# The gateway still runs this call's earlier attempt (same Idempotency-Key): its answer will come.
IN_PROGRESS = "idempotency_in_progress"
DEFAULT_MAX_RETRIES = 2
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
JITTER_S = 0.25
# A Retry-After longer than this (a daily limit, say) is not slept through: the error is raised.
MAX_RETRY_AFTER_S = 60.0


def retry_after_of(error: BaseException) -> float | None:
    if not isinstance(error, APIStatusError):
        return None
    header = retry_after_from_headers(error.headers)
    if header is not None:
        return header
    seconds = error.error.retry_after_seconds if error.error is not None else None
    return float(seconds) if seconds is not None else None


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    if not isinstance(error, APIStatusError):
        return False
    if error.status_code not in RETRYABLE_STATUSES and error.code != IN_PROGRESS:
        return False
    retry_after = retry_after_of(error)
    return retry_after is None or retry_after <= MAX_RETRY_AFTER_S


def wait_before_retry(state: RetryCallState) -> float:
    """The server's Retry-After when it sent one, else exponential backoff with jitter."""
    error = state.outcome.exception() if state.outcome is not None else None
    retry_after = retry_after_of(error) if error is not None else None
    if retry_after is not None:
        return retry_after
    return backoff_seconds(state.attempt_number)


def backoff_seconds(attempt: int) -> float:
    """0.5 s, 1 s, 2 s… (capped at 8 s) after attempt 1, 2, 3…, plus up to 0.25 s of random jitter
    so that clients failing together do not come back together."""
    return min(INITIAL_BACKOFF_S * 2.0 ** (attempt - 1), MAX_BACKOFF_S) + random.uniform(0, JITTER_S)


def sync_retrying(max_retries: int) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(max(0, max_retries) + 1),
        wait=wait_before_retry,
        retry=retry_if_exception(is_retryable),
        reraise=True,
    )


def async_retrying(max_retries: int) -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(max(0, max_retries) + 1),
        wait=wait_before_retry,
        retry=retry_if_exception(is_retryable),
        reraise=True,
    )
