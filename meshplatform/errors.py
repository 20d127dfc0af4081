"""The gateway's one error hierarchy and the seeds' ErrorEnvelope it renders to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, TypedDict

import orjson
from django.conf import settings
from django.http import HttpResponse


class ValidationDetail(TypedDict):
    loc: list[str | int]
    msg: str
    type: str


class ProviderErrorBody(TypedDict):
    """What the upstream itself said: its status, message and, when it gave them, its code and type."""

    provider: str
    status: int | None
    message: str | None
    code: str | None
    type: str | None


class ErrorBody(TypedDict):
    code: str
    message: str
    param: str | None
    details: list[ValidationDetail] | None
    provider_error: ProviderErrorBody | None
    retry_after_seconds: int | None
    type: str


class ErrorEnvelope(TypedDict):
    error: ErrorBody
    request_id: str


# OpenAI's `error.type` for each status, for clients that branch on it (`openai`, LangChain…).
OPENAI_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


def openai_error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status (`api_error` for the server side)."""
    return OPENAI_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


class GatewayError(Exception):
    """Base of every error a client may see; subclasses fix `code` and `http_status` (an error that
    mirrors an upstream's answer sets them per instance)."""

    code: str = "upstream_error"
    http_status: int = 500
    # Whether another provider might succeed where this one failed (the fallback decision).
    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        details: Sequence[ValidationDetail] | None = None,
        provider_error: ProviderErrorBody | None = None,
        retry_after_seconds: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        retryable: bool | None = None,
        code: str | None = None,
        http_status: int | None = None,
        retry_safe: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = self.retryable_by_default if retryable is None else retryable
        # The upstream certainly did not process the request (refused, overloaded, not connected),
        # so asking the same provider again cannot run it twice.
        self.retry_safe = retry_safe
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.message = message
        self.param = param
        self.details = details_capped(details) if details is not None else None
        self.provider_error = provider_error
        self.retry_after_seconds = retry_after_seconds
        self.extra_headers = dict(extra_headers or {})
        if retry_after_seconds is not None:
            self.extra_headers.setdefault("Retry-After", str(retry_after_seconds))

    def body(self) -> ErrorBody:
        return {
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "details": self.details,
            "provider_error": self.provider_error,
            "retry_after_seconds": self.retry_after_seconds,
            "type": openai_error_type(self.http_status),
        }

    def envelope(self, request_id: str) -> ErrorEnvelope:
        return {"error": self.body(), "request_id": request_id}


def details_capped(details: Sequence[ValidationDetail]) -> list[ValidationDetail]:
    """The first MESH_MAX_ERROR_DETAILS details, then one saying how many more there were: an
    error listing every one of 300,000 bad items was a 24 MB answer."""
    limit: int = settings.MESH_MAX_ERROR_DETAILS
    if len(details) <= limit:
        return list(details)
    rest = len(details) - limit
    summary: ValidationDetail = {
        "loc": ["body"],
        "msg": f"and {rest} more error{'s' if rest != 1 else ''} (only the first {limit} are listed)",
        "type": "too_many_errors",
    }
    return [*details[:limit], summary]


class InternalError(GatewayError):
    """A bug of ours (the 500 handler's answer): never an upstream's fault."""

    code = "internal_error"
    http_status = 500


class BadRequest(GatewayError):
    """The request is not what the API accepts (schema, JSON, content type)."""

    code = "validation_error"
    http_status = 422


class BadHost(GatewayError):
    """The request's Host is not in ALLOWED_HOSTS."""

    code = "bad_request"
    http_status = 400


class RequestTimeout(BadRequest):
    """The body arrived slower than MESH_BODY_MIN_RATE_BPS allows, or stopped short."""

    code = "request_timeout"
    http_status = 408


class PayloadTooLarge(BadRequest):
    http_status = 413


class UnsupportedMediaType(BadRequest):
    http_status = 415


class Unauthorized(GatewayError):
    code = "unauthorized"
    http_status = 401


class Forbidden(GatewayError):
    code = "forbidden"
    http_status = 403


class NotFound(GatewayError):
    code = "not_found"
    http_status = 404


class ModelNotFound(GatewayError):
    code = "model_not_found"
    http_status = 404


class Conflict(GatewayError):
    code = "conflict"
    http_status = 409


class SpendLimitExceeded(GatewayError):
    code = "spend_limit_exceeded"
    http_status = 402


class RateLimited(GatewayError):
    code = "rate_limit_exceeded"
    http_status = 429


class UpstreamError(GatewayError):
    """The provider failed; `retryable` says whether another provider may be tried. An upstream's
    own 400/404/413/422/429 keeps its status and names its cause in `code` (set per instance)."""

    code = "upstream_error"
    http_status = 502


class ProviderNotAvailable(GatewayError):
    code = "provider_not_available"
    http_status = 503
    retryable_by_default = True


class GatewayTimeout(GatewayError):
    code = "gateway_timeout"
    http_status = 504
    retryable_by_default = True


def error_response(error: GatewayError, request_id: str) -> HttpResponse:
    """Render `error` as the seeds' envelope; the only place the envelope is serialised."""
    if error.http_status == 401:  # refused before any key is known: no ledger entry counts it
        from meshplatform.metrics import unauthenticated_observed

        unauthenticated_observed(error.http_status, error.code)
    response = HttpResponse(
        orjson.dumps(error.envelope(request_id)),
        status=error.http_status,
        content_type="application/json",
    )
    for name, value in error.extra_headers.items():
        response[name] = value
    return response
