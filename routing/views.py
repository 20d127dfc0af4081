"""HTTP endpoints of the proxy: thin async views that authenticate, parse, call one service and
render (JSON, Server-Sent Events, or the error envelope)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, TypedDict

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from keys.auth import Admission, api_key_authenticate
from keys.limits import RateLimitState
from keys.types import ResolvedKey
from meshplatform import tracing
from meshplatform.errors import BadRequest, GatewayError, ModelNotFound, UnsupportedMediaType, error_response
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import request_id_of
from routing.catalog import CatalogEntry, catalog_current
from routing.idempotency import idempotent
from routing.pipeline import ChatAccepted, chat_completion, request_refused
from routing.providers.registry import provider_is_configured
from routing.relay import CompletionStream
from routing.resolve import model_allowed, model_resolve
from routing.schema import ChatCompletionRequest, parse_chat_request
from usage.types import DEFAULT_ENDPOINT

AsyncView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


class Pricing(TypedDict):
    input_per_mtok_usd: str
    output_per_mtok_usd: str
    cached_input_per_mtok_usd: str


class ModelObject(TypedDict):
    id: str
    object: str
    created: int
    owned_by: str
    context_window: int
    pricing: Pricing
    alias_for: str | None  # set on a tenant alias
    kind: str  # chat, embedding or image: the endpoint the model serves
    dimensions: int | None  # embedding models: the default vector length


def api_view(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """Method check and error envelope for an async API view."""

    def decorate(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, **kwargs: str) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    error = BadRequest(f"Method {request.method} is not allowed here.", param="method")
                    response = error_response(error, request_id_of(request))
                    response.status_code = 405
                    response["Allow"] = ", ".join(methods)
                    return response
                return await view(request, **kwargs)
            except GatewayError as error:
                return error_response(error, request_id_of(request))

        return wrapper

    return decorate


@api_view("POST")
@idempotent(DEFAULT_ENDPOINT)
async def chat_completions(request: HttpRequest, admission: Admission) -> HttpResponseBase:
    request_id = request_id_of(request)
    with tracing.span("mesh.validate"):
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
        await request_refused(admission=admission, request_id=request_id, error=error)
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
    """The catalog's models whose provider is configured, then the tenant's aliases, in OpenAI's
    list shape."""
    key = await api_key_authenticate(authorization=request.headers.get("Authorization"))
    catalog = await catalog_current()
    data = [
        model_object(entry)
        for entry in sorted(catalog.entries.values(), key=lambda e: e.model_id)
        if listable(key, entry.model_id, entry)
    ]
    for alias, target in sorted(catalog.tenant_aliases(key.tenant_id).items()):
        entry = catalog.get(target)
        if entry is not None and listable(key, alias, entry):
            data.append(model_object(entry, alias=alias))
    return json_ok({"object": "list", "data": data})


@api_view("GET")
async def model_retrieve(request: HttpRequest, model_id: str) -> HttpResponseBase:
    """OpenAI's `GET /v1/models/{model}`: any name a completion accepts (id, alias, bare name)."""
    key = await api_key_authenticate(authorization=request.headers.get("Authorization"))
    catalog = await catalog_current()
    entry = model_resolve(catalog=catalog, name=model_id, tenant_id=key.tenant_id)
    if not listable(key, model_id, entry):
        raise ModelNotFound(f"The model {model_id!r} is not available to this API key.", param="model")
    alias = model_id if model_id in catalog.tenant_aliases(key.tenant_id) else None
    return json_ok(model_object(entry, alias=alias))


def listable(key: ResolvedKey, name: str, entry: CatalogEntry) -> bool:
    return provider_is_configured(entry.provider) and model_allowed(key, name, entry)


def model_object(entry: CatalogEntry, *, alias: str | None = None) -> ModelObject:
    """OpenAI's model object, plus what Mesh knows: context window, prices, and the aliased id."""
    model: ModelObject = {
        "id": alias or entry.model_id,
        "object": "model",
        "created": 0,
        "owned_by": entry.provider,
        "context_window": entry.context_window,
        "pricing": {
            "input_per_mtok_usd": str(entry.input_per_mtok_usd),
            "output_per_mtok_usd": str(entry.output_per_mtok_usd),
            "cached_input_per_mtok_usd": str(entry.cached_input_per_mtok_usd),
        },
        "alias_for": entry.model_id if alias is not None else None,
        "kind": entry.kind,
        "dimensions": entry.dimensions,
    }
    return model


def json_ok(payload: object) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), content_type="application/json")
