"""HTTP endpoints of the Responses API: create (JSON or SSE), retrieve, delete, input items."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from keys.auth import Admission, api_key_admit, api_key_authenticate
from meshplatform.errors import BadRequest, GatewayError
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import request_id_of
from responses_api.pipeline import ResponseStream, response_create
from responses_api.schema import ResponsesRequest, parse_responses_request
from responses_api.services import (
    input_items_page,
    stored_response_delete,
    stored_response_get,
)
from routing.pipeline import request_refused
from routing.views import api_view, json_body, json_ok, json_response

LIMIT_SETTINGS = ("MESH_MAX_MESSAGES", "MESH_MAX_CONTENT_PARTS", "MESH_MAX_TOOLS")
MAX_PAGE = 100


@api_view("POST")
async def responses_create(request: HttpRequest) -> HttpResponseBase:
    admission = await api_key_admit(authorization=request.headers.get("Authorization"))
    request_id = request_id_of(request)
    parsed = await _parsed(request, admission, request_id)
    result = await response_create(admission=admission, request=parsed, request_id=request_id)
    if isinstance(result, ResponseStream):
        response = EventStreamResponse(result.sse(), close=result.aclose)
        for name, value in result.rate_limits.headers().items():
            response[name] = value
        return response
    return json_response(result.payload, result.rate_limits)


async def _parsed(request: HttpRequest, admission: Admission, request_id: str) -> ResponsesRequest:
    """The body as a Responses request; a refusal is recorded for the admitted key."""
    try:
        limits = {name: int(getattr(settings, name)) for name in LIMIT_SETTINGS}
        parsed = parse_responses_request(json_body(request), limits)
    except GatewayError as error:
        await request_refused(admission=admission, request_id=request_id, error=error)
    return parsed


@api_view("GET", "DELETE")
async def response_detail(request: HttpRequest, response_id: str) -> HttpResponseBase:
    key = await api_key_authenticate(authorization=request.headers.get("Authorization"))
    if request.method == "DELETE":
        await stored_response_delete(tenant_id=key.tenant_id, response_id=response_id)
        return json_ok({"id": response_id, "object": "response", "deleted": True})
    stored = await stored_response_get(tenant_id=key.tenant_id, response_id=response_id)
    return json_ok(stored.response)


@api_view("GET")
async def response_input_items(request: HttpRequest, response_id: str) -> HttpResponseBase:
    """OpenAI's `GET /v1/responses/{id}/input_items`: the request's own input items, paged."""
    key = await api_key_authenticate(authorization=request.headers.get("Authorization"))
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order is 'asc' or 'desc'.", param="order", http_status=400)
    raw_limit = request.GET.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise BadRequest(f"limit is an integer from 1 to {MAX_PAGE}.", param="limit", http_status=400)
    stored = await stored_response_get(tenant_id=key.tenant_id, response_id=response_id)
    page = input_items_page(
        stored.input_items,
        limit=int(raw_limit),
        order="asc" if order == "asc" else "desc",
        after=request.GET.get("after"),
    )
    return json_ok(page)
