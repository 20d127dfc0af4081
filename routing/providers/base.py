"""The provider adapter interface: build the upstream request, parse its answer, map its errors.

Every adapter speaks OpenAI's chat format towards the pipeline (response objects and
`chat.completion.chunk` dicts), whatever its upstream speaks, so the pipeline never
changes when a provider is added.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from meshplatform.errors import BadRequest, ProviderErrorBody, UpstreamError
from routing.http_client import UpstreamResponse
from usage.types import TokenUsage

# Upstream statuses a client sees as they are: the request itself was refused (no fallback).
MIRRORED_STATUSES = frozenset({400, 404, 413, 422})
# The upstream did not run the request: asking again (here or elsewhere) cannot run it twice.
RETRY_SAFE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_FALLBACK_CODES = {
    400: "upstream_bad_request",
    404: "upstream_not_found",
    413: "upstream_payload_too_large",
    422: "upstream_unprocessable_entity",
}
# Types that say no more than the status does.
_GENERIC_TYPES = frozenset(
    {"invalid_request_error", "error", "api_error", "server_error", "INVALID_ARGUMENT"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One attempt at one provider: the OpenAI-format body (Mesh fields removed) and its target."""

    upstream_model: str
    body: dict[str, Any]
    stream: bool
    context_window: int
    max_output_tokens: int | None = None
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole non-streamed answer in OpenAI's `chat.completion` shape, and what it used."""

    payload: dict[str, Any]
    usage: TokenUsage


class ErrorFields(NamedTuple):
    """What an upstream's error body says, in any provider's shape."""

    message: str | None
    code: str | None
    type: str | None
    param: str | None
    retry_after_s: float | None = None


class ProviderAdapter(ABC):
    """One upstream provider. Subclasses are registered by name in `routing.providers.registry`."""

    def __init__(
        self, *, name: str, api_key: str, base_url: str, options: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.options = dict(options or {})

    @property
    def configured(self) -> bool:
        """It has credentials and an address (the rule `meshplatform.providers` applies too)."""
        return bool(self.api_key and self.base_url)

    @abstractmethod
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        """The HTTP request for `call`; credentials come from settings, never from the client.
        A request part this provider cannot take raises `BadRequest` (422) naming it."""

    @abstractmethod
    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        """Turn a 2xx non-streamed body into an OpenAI-shaped completion."""

    @abstractmethod
    def iter_chunks(self, response: UpstreamResponse, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]:
        """Yield OpenAI-shaped `chat.completion.chunk` dicts; the last one with usage carries it."""

    def error_fields(self, body: bytes) -> ErrorFields:
        """The error body's message, code, type and param; OpenAI's shape (`{"error": {...}}`) here."""
        return openai_error_fields(body)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamError:
        """A non-2xx answer as a typed error that keeps its meaning for the client: the request's own
        faults (400/404/413/422) and rate limits (429) keep their status; the operator's credentials
        (401/403) and the upstream's failures (5xx, 529) are 502. 408, 409, 429 and 5xx may succeed
        elsewhere; so may 401/403 (another provider has other credentials)."""
        fields = self.error_fields(body)
        provider_error = self.provider_error(status, fields.message, code=fields.code, kind=fields.type)
        detail = f": {fields.message}" if fields.message else "."
        # Whatever status the upstream used, a refused deployment key is a 502 (not the caller's fault).
        kind = 401 if self.credentials_refused(fields) else status
        if kind in MIRRORED_STATUSES:
            return UpstreamError(
                f"The {self.name} upstream rejected the request (HTTP {status}){detail}",
                provider_error=provider_error,
                param=fields.param,
                code=error_code_of(fields) or _FALLBACK_CODES[status],
                http_status=status,
                retryable=False,
            )
        if kind == 429:
            retry_after = retry_after_seconds(headers, fields.retry_after_s)
            return UpstreamError(
                f"The {self.name} upstream is rate limiting this deployment{detail}",
                provider_error=provider_error,
                code="rate_limit_exceeded",
                http_status=429,
                retry_after_seconds=retry_after,
                retryable=True,
                retry_safe=True,
            )
        return UpstreamError(
            f"The {self.name} upstream answered HTTP {status}{detail}",
            provider_error=provider_error,
            retryable=kind in (401, 403) or kind in RETRY_SAFE_STATUSES or kind >= 500,
            retry_safe=kind in RETRY_SAFE_STATUSES,
        )

    def credentials_refused(self, fields: ErrorFields) -> bool:
        """Whether the error says the deployment's own credentials were refused (not the request)."""
        return False

    def malformed(self, what: str, *, status: int | None = 200) -> UpstreamError:
        """A 2xx answer Mesh cannot read: 502 (never 500); the upstream may have run the request."""
        return UpstreamError(
            f"The {self.name} upstream sent {what}.",
            provider_error=self.provider_error(status, what),
            retryable=True,
        )

    def stream_failed(self, error: object) -> UpstreamError:
        """The upstream's error event after a stream's first chunk (an OpenAI-style `error` object
        with `message`, `code`, `type`): 502, never retried (the client has the stream's start)."""
        body = error if isinstance(error, dict) else {}
        code, kind = body.get("code"), body.get("type")
        return UpstreamError(
            f"The {self.name} upstream failed mid-stream.",
            provider_error=self.provider_error(
                None,
                str(body.get("message") or "stream error"),
                code=code if isinstance(code, str) else None,
                kind=kind if isinstance(kind, str) else None,
            ),
            retryable=False,
        )

    def provider_error(
        self, status: int | None, message: str | None, *, code: str | None = None, kind: str | None = None
    ) -> ProviderErrorBody:
        return {"provider": self.name, "status": status, "message": message, "code": code, "type": kind}


def json_headers(credentials: dict[str, str], *, stream: bool = False) -> dict[str, str]:
    """An upstream call's headers: the provider's credentials, a JSON body, a JSON or SSE answer,
    uncompressed (the relay reads the stream's bytes as they arrive)."""
    return {
        **credentials,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "Accept-Encoding": "identity",
    }


def unsupported_part(provider: str, where: str, kind: object) -> BadRequest:
    """422 for a content part (or field) a provider cannot take, naming it."""
    return BadRequest(
        f"The {provider} provider cannot take {where} (type {kind!r}).",
        param=where,
        details=[
            {
                "loc": ["body", *_loc(where)],
                "msg": f"{kind!r} is not supported by {provider}",
                "type": "unsupported",
            }
        ],
    )


def unsupported_value(provider: str, field: str, why: str) -> BadRequest:
    """422 for a request field whose value a provider cannot honour (e.g. n > 1), naming it."""
    return BadRequest(
        f"The {provider} provider cannot take this {field}: {why}.",
        param=field,
        details=[{"loc": ["body", *_loc(field)], "msg": why, "type": "unsupported"}],
    )


def _loc(where: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in where.split(".")]


def error_code_of(fields: ErrorFields) -> str | None:
    """The upstream's own code (or a telling type) as a snake_case identifier, e.g.
    `context_length_exceeded`, `request_too_large`, `deployment_not_found`."""
    for value in (fields.code, fields.type):
        if isinstance(value, str) and _IDENTIFIER.match(value) and value not in _GENERIC_TYPES:
            return _CAMEL.sub("_", value).lower().replace("-", "_").replace(".", "_")
    return None


def retry_after_seconds(headers: Mapping[str, str] | None, from_body: float | None) -> int | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` (seconds) and the body's hint (Gemini's
    RetryInfo); None when the upstream said nothing (an HTTP-date Retry-After counts as nothing)."""
    seconds: float | None = None
    if headers:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            if value:
                try:
                    seconds = float(value) * scale
                    break
                except ValueError:
                    continue
    if from_body is not None:  # both given: the longer wait is the safe one
        seconds = from_body if seconds is None else max(seconds, from_body)
    if seconds is None or seconds < 0:
        return None
    return max(1, int(-(-seconds // 1)))  # whole seconds, rounded up, at least 1


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def openai_error_fields(body: bytes) -> ErrorFields:
    """`{"error": {"message", "type", "param", "code"}}` (OpenAI, OpenRouter, Azure)."""
    data = load_json(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return ErrorFields(
            message=_trim(error.get("message")),
            code=str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
            type=error.get("type") if isinstance(error.get("type"), str) else None,
            param=error.get("param") if isinstance(error.get("param"), str) else None,
        )
    if isinstance(error, str):
        return ErrorFields(message=_trim(error), code=None, type=None, param=None)
    text = body[:300].decode("utf-8", "replace").strip() if data is None else ""
    return ErrorFields(message=text or None, code=None, type=None, param=None)


def _trim(value: object) -> str | None:
    """The provider's error message, trimmed; never a whole body (it may echo the prompt)."""
    return str(value)[:500] or None if value else None


def usage_from_openai(usage: dict[str, Any] | None) -> TokenUsage:
    """OpenAI's usage object (also used by OpenRouter and most compatible servers); adapters of
    other providers emit it with `prompt_tokens_details.cache_write_tokens` for cache writes."""
    if not usage:
        return TokenUsage()
    details = usage.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )
