"""HTTP endpoints of the proxy: thin async views that authenticate, parse, call one service and
render (JSON, Server-Sent Events, or the error envelope)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from keys.auth import Admission, api_key_admit, api_key_authenticate
from keys.limits import RateLimitState
from meshplatform.errors import BadRequest, GatewayError, UnsupportedMediaType, error_response
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import request_id_of
from routing.catalog import catalog_current
from routing.pipeline import ChatAccepted, chat_completion, chat_refused
from routing.providers.registry import provider_is_configured
from routing.relay import CompletionStream
from routing.schema import ChatCompletionRequest, parse_chat_request

AsyncView = Callable[[HttpRequest], Coroutine[Any, Any, HttpResponseBase]]


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
    admission = await api_key_admit(authorization=request.headers.get("Authorization"))
    request_id = request_id_of(request)
    chat = await _chat_request(request, admission, request_id)
    result = await chat_completion(admission=admission, chat=chat, request_id=request_id)
    if isinstance(result, CompletionStream):
        return sse_response(result)
    if isinstance(result, ChatAccepted):  # async_mode: 202 and the queued job
        response = json_response(dict(result.job), result.rate_limits)
        response.status_code = 202
        response["Location"] = f"/v1/jobs/{result.job['id']}"
        return response
    return json_response(result.payload, result.rate_limits)


async def _chat_request(request: HttpRequest, admission: Admission, request_id: str) -> ChatCompletionRequest:
    """The body as a request this endpoint runs; any refusal is recorded for the admitted key."""
    try:
        chat = parse_chat_request(json_body(request))
    except GatewayError as error:
        await chat_refused(admission=admission, request_id=request_id, error=error)
    return chat


def json_body(request: HttpRequest) -> bytes:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {content_type or 'missing'!r}.", param="Content-Type"
        )
    return request.body


def json_response(payload: dict[str, Any], limits: RateLimitState) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), content_type="application/json")
    for name, value in limits.headers().items():
        response[name] = value
    return response


def sse_response(stream: CompletionStream) -> EventStreamResponse:
    """The stream's events; the ASGI handler settles the stream when the response ends, sent or not."""
    response = EventStreamResponse(stream.sse(), close=stream.aclose)
    for name, value in stream.rate_limits.headers().items():
        response[name] = value
    return response


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
