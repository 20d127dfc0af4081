"""The HTTP glue of the jobs, files and batches APIs: bearer auth, method checks, the error
envelope, JSON bodies and OpenAI's cursor-page query parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from keys.auth import api_key_authenticate_sync
from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, GatewayError, UnsupportedMediaType, error_response
from meshplatform.request_ids import request_id_of

View = Callable[..., HttpResponseBase]
KeyedView = Callable[..., HttpResponseBase]


def keyed_view(**handlers: KeyedView) -> View:
    """One URL, one handler per method (`GET=…, POST=…`), each called as handler(request, key, **kwargs)."""
    allowed = ", ".join(sorted(handlers))

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        handler = handlers.get(request.method or "")
        try:
            if handler is None:
                response = error_response(
                    BadRequest(f"Method {request.method} is not allowed here.", param="method"),
                    request_id_of(request),
                )
                response.status_code = 405
                response["Allow"] = allowed
                return response
            key = api_key_authenticate_sync(authorization=request.headers.get("Authorization"))
            return handler(request, key, **kwargs)
        except GatewayError as error:
            return error_response(error, request_id_of(request))

    return view


def json_response(payload: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def json_object_body(request: HttpRequest) -> dict[str, Any]:
    if (request.content_type or "") != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json.", param="Content-Type")
    try:
        data = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"The body is not valid JSON: {error}.", param="body") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", param="body")
    return data


def required_str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{name}' is required and must be a non-empty string.", param=name)
    return value


def page_params(request: HttpRequest, *, max_limit: int = 100) -> tuple[str | None, int, str]:
    """`after` (an id), `limit` (1..max_limit, default 20), `order` (desc|asc)."""
    raw_limit = request.GET.get("limit", "20")
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= max_limit:
        raise BadRequest(f"limit must be an integer from 1 to {max_limit}.", param="limit")
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be 'asc' or 'desc'.", param="order")
    after = request.GET.get("after") or None
    if after is not None and (len(after) > 60 or "\x00" in after):  # NUL: PostgreSQL text cannot hold it
        raise BadRequest("after must be an id from a previous page.", param="after")
    return after, int(raw_limit), order


def choice_param(request: HttpRequest, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.GET.get(name) or None
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}.", param=name)
    return value


def key_tenant(key: ResolvedKey) -> int:
    return key.tenant_id
