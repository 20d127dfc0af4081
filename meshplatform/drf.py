"""DRF glue: the management APIs render the same ErrorEnvelope as the proxy path."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from meshplatform.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationDetail,
)
from meshplatform.json_input import JsonLimits, json_loads_bounded
from meshplatform.request_ids import request_id_of


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser on the gateway's one bounded parse (depth, items, string size), and no
    NUL anywhere: what these APIs accept is stored in PostgreSQL, whose text and jsonb cannot
    hold it. (DRF's own parser recursed into a RecursionError 500 on deep nesting.)"""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read() if stream is not None else b""
        return json_loads_bounded(body, JsonLimits.from_settings(forbid_nul=True))


def _details(data: Any, loc: list[str | int]) -> list[ValidationDetail]:
    """Flattens DRF's nested error dicts into pydantic-style loc/msg/type details."""
    if isinstance(data, dict):
        return [d for key, value in data.items() for d in _details(value, [*loc, key])]
    if isinstance(data, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in data):
            return [
                {"loc": loc or ["body"], "msg": str(item), "type": item.code or "invalid"} for item in data
            ]
        return [d for index, value in enumerate(data) for d in _details(value, [*loc, index])]
    return [{"loc": loc or ["body"], "msg": str(data), "type": getattr(data, "code", "invalid")}]


def as_gateway_error(exc: Exception) -> GatewayError | None:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, exceptions.ValidationError):
        details = _details(exc.detail, ["body"])
        param = ".".join(str(p) for p in details[0]["loc"][1:]) if details else None
        return BadRequest("Request validation failed.", details=details, param=param or None)
    if isinstance(exc, exceptions.ParseError):
        return BadRequest(str(exc.detail), param="body")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        from meshplatform.errors import UnsupportedMediaType

        return UnsupportedMediaType(str(exc.detail), param="body")
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return Unauthorized(str(exc.detail))
    if isinstance(exc, exceptions.PermissionDenied):
        return Forbidden(str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return NotFound(str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return RateLimited(str(exc.detail), retry_after_seconds=int(getattr(exc, "wait", None) or 1))
    if isinstance(exc, exceptions.MethodNotAllowed):
        return BadRequest(str(exc.detail), param="method")
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error becomes the seeds' envelope."""
    error = as_gateway_error(exc)
    if error is None:
        return None
    request = context.get("request")
    status = 405 if isinstance(exc, exceptions.MethodNotAllowed) else error.http_status
    response = Response(error.envelope(request_id_of(request)), status=status)
    for name, value in error.extra_headers.items():
        response[name] = value
    return response
