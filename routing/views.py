"""HTTP endpoints of the proxy: thin async views that call the pipeline and render errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from keys.auth import api_key_authenticate
from meshplatform.errors import BadRequest, GatewayError, error_response
from meshplatform.request_ids import request_id_of
from routing.catalog import catalog_current
from routing.pipeline import chat_completion
from routing.providers.registry import provider_is_configured

AsyncView = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def api_view(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """Method check and error envelope for an async API view."""

    def decorate(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    error = BadRequest(f"Method {request.method} is not allowed here.", param="method")
                    response = error_response(error, request_id_of(request))
                    response.status_code = 405
                    response["Allow"] = ", ".join(methods)
                    return response
                return await view(request)
            except GatewayError as error:
                return error_response(error, request_id_of(request))

        return wrapper

    return decorate


@api_view("POST")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    return await chat_completion(request)


@api_view("GET")
async def models_list(request: HttpRequest) -> HttpResponseBase:
    """The catalog's models whose provider is configured, in OpenAI's list shape."""
    key = await api_key_authenticate(authorization=request.headers.get("Authorization"))
    catalog = await catalog_current()
    data = [
        {
            "id": entry.model_id,
            "object": "model",
            "created": 0,
            "owned_by": entry.provider,
            "context_window": entry.context_window,
            "pricing": {
                "input_per_mtok_usd": str(entry.input_per_mtok_usd),
                "output_per_mtok_usd": str(entry.output_per_mtok_usd),
                "cached_input_per_mtok_usd": str(entry.cached_input_per_mtok_usd),
            },
        }
        for entry in sorted(catalog.entries.values(), key=lambda e: e.model_id)
        if provider_is_configured(entry.provider)
        and (not key.allowed_models or entry.model_id in key.allowed_models)
    ]
    return HttpResponse(orjson.dumps({"object": "list", "data": data}), content_type="application/json")
