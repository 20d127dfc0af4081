"""The seeds' ErrorEnvelope: `{"error": {code, message, param, details, provider_error…}, "request_id"}`."""

from __future__ import annotations

from meshapi.types._base import Response


class ValidationErrorDetail(Response):
    """One pydantic-style problem of a 422: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int] = []
    msg: str = ""
    type: str = ""


class ProviderError(Response):
    """What the upstream provider said when it failed (502, or its own 4xx)."""

    provider: str | None = None
    status: int | None = None
    message: str | None = None


class ErrorBody(Response):
    code: str | None = None
    message: str = ""
    param: str | None = None
    details: list[ValidationErrorDetail] | None = None
    provider_error: ProviderError | None = None
    retry_after_seconds: int | None = None
    type: str | None = None


class ErrorEnvelope(Response):
    error: ErrorBody
    request_id: str | None = None
