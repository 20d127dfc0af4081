"""One exception class per envelope code, so callers branch on types rather than on status numbers."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic

from meshapi.types.errors import ErrorBody, ErrorEnvelope, ProviderError, ValidationErrorDetail


class MeshAPIError(Exception):
    """Base of every error this SDK raises."""


class APIConnectionError(MeshAPIError):
    """The gateway could not be reached, or the connection broke before an answer arrived."""

    status_code: int | None = None
    code: str | None = None
    request_id: str | None = None
    envelope: ErrorEnvelope | None = None

    def __init__(self, message: str = "Could not connect to the Mesh gateway.") -> None:
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""

    def __init__(self, message: str = "The request to the Mesh gateway timed out.") -> None:
        super().__init__(message)


class APIStatusError(MeshAPIError):
    """The gateway answered with an error status; `envelope` is its ErrorEnvelope (when it sent one)."""

    default_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        envelope: ErrorEnvelope | None,
        request_id: str | None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.envelope = envelope
        self.request_id = request_id
        self.headers = headers if headers is not None else httpx.Headers()

    @property
    def error(self) -> ErrorBody | None:
        return self.envelope.error if self.envelope is not None else None

    @property
    def code(self) -> str | None:
        return self.error.code if self.error is not None else None

    @property
    def param(self) -> str | None:
        return self.error.param if self.error is not None else None

    @property
    def provider_error(self) -> ProviderError | None:
        return self.error.provider_error if self.error is not None else None

    def __str__(self) -> str:
        where = f" (request_id={self.request_id})" if self.request_id else ""
        return f"{self.status_code} {self.code or 'error'}: {self.message}{where}"


class BadRequestError(APIStatusError):
    default_status = 400


class AuthenticationError(APIStatusError):
    default_status = 401


class SpendLimitError(APIStatusError):
    default_status = 402


class PermissionDeniedError(APIStatusError):
    default_status = 403


class NotFoundError(APIStatusError):
    default_status = 404


class ConflictError(APIStatusError):
    default_status = 409


class ValidationError(APIStatusError):
    """The request failed validation; `details` lists each problem (`loc`, `msg`, `type`)."""

    default_status = 422

    @property
    def details(self) -> list[ValidationErrorDetail]:
        return list(self.error.details or []) if self.error is not None else []


class RateLimitError(APIStatusError):
    """RPM/RPD reached (or the upstream's own 429); `retry_after` is in seconds when the gateway said."""

    default_status = 429

    @property
    def retry_after(self) -> float | None:
        header = retry_after_from_headers(self.headers)
        if header is not None:
            return header
        seconds = self.error.retry_after_seconds if self.error is not None else None
        return float(seconds) if seconds is not None else None


class UpstreamError(APIStatusError):
    """The provider failed; `provider_error` says which and how."""

    default_status = 502


class ProviderNotAvailableError(APIStatusError):
    default_status = 503


class GatewayTimeoutError(APIStatusError):
    default_status = 504


class InternalServerError(APIStatusError):
    default_status = 500


class JobWaitTimeout(MeshAPIError, TimeoutError):
    """`jobs.wait()` gave up before the job reached a final status."""


ERROR_BY_CODE: dict[str, type[APIStatusError]] = {
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "spend_limit_exceeded": SpendLimitError,
    "not_found": NotFoundError,
    "model_not_found": NotFoundError,
    "conflict": ConflictError,
    "validation_error": ValidationError,
    "unprocessable_entity": ValidationError,
    "rate_limit_exceeded": RateLimitError,
    "upstream_error": UpstreamError,
    "provider_not_available": ProviderNotAvailableError,
    "gateway_timeout": GatewayTimeoutError,
}

ERROR_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: SpendLimitError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    500: InternalServerError,
    502: UpstreamError,
    503: ProviderNotAvailableError,
    504: GatewayTimeoutError,
}


def retry_after_from_headers(headers: httpx.Headers) -> float | None:
    """`Retry-After-Ms` or `Retry-After` in seconds (delta form; an HTTP date is ignored)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def parse_envelope(payload: Any) -> ErrorEnvelope | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return None
    try:
        return ErrorEnvelope.model_validate(payload)
    except pydantic.ValidationError:
        return None


def error_class(code: str | None, status: int | None) -> type[APIStatusError]:
    """The class of `code`, else of `status`: an upstream's own 4xx keeps its status but is still
    an `upstream_error`, so the code decides first."""
    if code is not None and code in ERROR_BY_CODE:
        return ERROR_BY_CODE[code]
    if status is not None and status in ERROR_BY_STATUS:
        return ERROR_BY_STATUS[status]
    if status is not None and status >= 500:
        return InternalServerError
    return APIStatusError


def error_from_envelope(
    envelope: ErrorEnvelope,
    *,
    status_code: int | None,
    request_id: str | None,
    headers: httpx.Headers | None = None,
) -> APIStatusError:
    cls = error_class(envelope.error.code, status_code)
    return cls(
        envelope.error.message or f"HTTP {status_code}",
        status_code=status_code if status_code is not None else cls.default_status,
        envelope=envelope,
        request_id=envelope.request_id or request_id,
        headers=headers,
    )


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The exception for an error response whose body has been read."""
    request_id = response.headers.get("x-request-id")
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    envelope = parse_envelope(payload)
    if envelope is not None:
        return error_from_envelope(
            envelope, status_code=response.status_code, request_id=request_id, headers=response.headers
        )
    text = response.text.strip()[:500] or response.reason_phrase
    return error_class(None, response.status_code)(
        text, status_code=response.status_code, envelope=None, request_id=request_id, headers=response.headers
    )
