"""HTTP endpoints POST /v1/embeddings and POST /v1/images/generations: authenticate, parse, call
one service (routing.media_pipeline), render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase

from keys.auth import Admission
from meshplatform.errors import GatewayError
from meshplatform.request_ids import request_id_of
from routing.idempotency import idempotent
from routing.media_pipeline import EMBEDDINGS, IMAGES, embeddings_create, images_generate
from routing.media_schema import parse_embeddings_request, parse_images_request
from routing.pipeline import request_refused
from routing.views import api_view, json_body, json_response


@api_view("POST")
@idempotent(EMBEDDINGS)
async def embeddings(request: HttpRequest, admission: Admission) -> HttpResponseBase:
    request_id = request_id_of(request)
    try:
        parsed = parse_embeddings_request(json_body(request))
    except GatewayError as error:
        await request_refused(admission=admission, request_id=request_id, error=error, endpoint=EMBEDDINGS)
    result = await embeddings_create(admission=admission, request=parsed, request_id=request_id)
    return json_response(result.payload, result.rate_limits)


@api_view("POST")
@idempotent(IMAGES)
async def images_generations(request: HttpRequest, admission: Admission) -> HttpResponseBase:
    request_id = request_id_of(request)
    try:
        parsed = parse_images_request(json_body(request))
    except GatewayError as error:
        await request_refused(admission=admission, request_id=request_id, error=error, endpoint=IMAGES)
    result = await images_generate(admission=admission, request=parsed, request_id=request_id)
    return json_response(result.payload, result.rate_limits)
