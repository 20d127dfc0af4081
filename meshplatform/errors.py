"""The gateway's one error hierarchy and the seeds' ErrorEnvelope it renders to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, TypedDict

import orjson
from django.http import HttpResponse


class ValidationDetail(TypedDict):
    loc: list[str | int]
    msg: str
    type: str


class ProviderErrorBody(TypedDict):
    provider: str
    status: int | None
    message: str | None


class ErrorBody(TypedDict):
    code: str
    message: str
    param: str | None
    details: list[ValidationDetail] | None
    provider_error: ProviderErrorBody | None
    retry_after_seconds: int | None


class ErrorEnvelope(TypedDict):
    error: ErrorBody
    request_id: str


class GatewayError(Exception):
    """Base of every error a client may see; subclasses fix `code` and `http_status`."""

    code: ClassVar[str] = "upstream_error"
    http_status: ClassVar[int] = 500
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
    ) -> None:
        super().__init__(message)
        self.retryable = self.retryable_by_default if retryable is None else retryable
        self.message = message
        self.param = param
        self.details = list(details) if details is not None else None
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
        }

    def envelope(self, request_id: str) -> ErrorEnvelope:
        return {"error": self.body(), "request_id": request_id}


class BadRequest(GatewayError):
    """The request is not what the API accepts (schema, JSON, content type)."""

    code = "validation_error"
    http_status = 422


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
    """The provider failed; `retryable` says whether another provider may be tried."""

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
    response = HttpResponse(
        orjson.dumps(error.envelope(request_id)),
        status=error.http_status,
        content_type="application/json",
    )
    for name, value in error.extra_headers.items():
        response[name] = value
    return response
