"""404 and 500 handlers: the error envelope on API paths, Django's pages elsewhere."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from meshplatform.errors import InternalError, NotFound, error_response
from meshplatform.request_ids import request_id_of


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(tuple(settings.API_PATH_PREFIXES))


def api_not_found(request: HttpRequest, exception: Exception | None = None, **kwargs: Any) -> HttpResponse:
    if _is_api(request):
        return error_response(NotFound(f"No endpoint at {request.path}."), request_id_of(request))
    return defaults.page_not_found(request, exception)


async def api_unknown_path(request: HttpRequest) -> HttpResponse:
    """The catch-all for /v1/ paths no endpoint claims, whatever the method."""
    return error_response(NotFound(f"No endpoint at {request.path}."), request_id_of(request))


def server_error(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if _is_api(request):
        return error_response(InternalError("Internal error; it has been logged."), request_id_of(request))
    return defaults.server_error(request)
