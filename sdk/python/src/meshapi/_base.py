"""What the sync and async clients share: configuration from arguments or the environment,
headers, per-call options and the translation of httpx failures into the SDK's errors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

import httpx
from pydantic import BaseModel

from meshapi._errors import APIConnectionError, APITimeoutError, MeshAPIError
from meshapi._version import __version__

DEFAULT_BASE_URL = "https://api.meshapi.ai"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
TOKEN_ENV = "MESHAPI_TOKEN"
BASE_URL_ENV = "MESHAPI_BASE_URL"

ModelT = TypeVar("ModelT", bound=BaseModel)
Timeout = float | httpx.Timeout | None


class RequestOptions(TypedDict, total=False):
    """Per-call overrides every method accepts as keyword arguments."""

    timeout: Timeout
    """HTTP timeout in seconds (or an `httpx.Timeout`); None waits forever."""
    max_retries: int
    extra_headers: Mapping[str, str]
    idempotency_key: str
    """Sent as `Idempotency-Key` on a POST (default: a fresh UUID per call, kept across its retries)."""


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    token: str
    timeout: Timeout
    max_retries: int
    default_headers: Mapping[str, str] = field(default_factory=dict)


def client_config(
    *,
    base_url: str | None,
    token: str | None,
    timeout: Timeout,
    max_retries: int,
    default_headers: Mapping[str, str] | None,
) -> ClientConfig:
    """Arguments win over `MESHAPI_TOKEN` / `MESHAPI_BASE_URL`; a missing token fails here, not later."""
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise MeshAPIError(f"No API token: pass token=... or set {TOKEN_ENV}.")
    url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    url = url.removesuffix("/v1")  # an OpenAI-style base URL works too
    if max_retries < 0:
        raise ValueError("max_retries must not be negative")
    return ClientConfig(
        base_url=url,
        token=token,
        timeout=timeout,
        max_retries=max_retries,
        default_headers=dict(default_headers or {}),
    )


@dataclass(frozen=True)
class PreparedCall:
    """One logical call: the same request (and Idempotency-Key) for each of its attempts."""

    request: httpx.Request
    max_retries: int


def prepare_call(
    http: httpx.Client | httpx.AsyncClient,
    config: ClientConfig,
    method: str,
    path: str,
    *,
    options: RequestOptions,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    files: Any = None,
    data: Mapping[str, Any] | None = None,
    accept: str = "application/json",
) -> PreparedCall:
    headers = {
        "Authorization": f"Bearer {config.token}",
        "Accept": accept,
        "User-Agent": f"meshapi-python/{__version__}",
        **config.default_headers,
    }
    if method == "POST":
        headers["Idempotency-Key"] = options.get("idempotency_key") or str(uuid.uuid4())
    headers.update(options.get("extra_headers") or {})
    timeout = options.get("timeout", config.timeout)
    query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
    request = http.build_request(
        method,
        config.base_url + path,
        json=json,
        params=query or None,
        files=files,
        data=data,
        headers=headers,
        timeout=timeout,
    )
    return PreparedCall(request=request, max_retries=options.get("max_retries", config.max_retries))


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@contextmanager
def transport_errors() -> Iterator[None]:
    """httpx's transport failures as APIConnectionError / APITimeoutError (both retryable)."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise APITimeoutError(f"The request to the Mesh gateway timed out: {error!r}") from error
    except httpx.TransportError as error:
        raise APIConnectionError(f"Could not reach the Mesh gateway: {error!r}") from error
