"""POST /v1/compare: authenticate, hand the body to the compare service, render the side-by-side
answer (JSON) or the tagged event stream."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase

from keys.auth import api_key_authenticate, bearer_token
from keys.tokens import token_hash
from meshplatform.event_stream import EventStreamResponse
from meshplatform.request_ids import request_id_of
from routing.compare.request import compare_request_parse
from routing.compare.service import CompareStream, compare_start, comparison_run
from routing.views import api_view, json_body, json_response


@api_view("POST")
async def compare(request: HttpRequest) -> HttpResponseBase:
    authorization = request.headers.get("Authorization")
    key = await api_key_authenticate(authorization=authorization)
    comparison = await compare_start(
        key=key,
        key_hash=token_hash(bearer_token(authorization)),
        request_id=request_id_of(request),
        parse=lambda: compare_request_parse(json_body(request)),
    )
    if comparison.runs[0].chat.stream:
        stream = CompareStream(comparison)
        await stream.open()
        response = EventStreamResponse(stream.sse(), close=stream.aclose)
        for name, value in comparison.rate_limits.headers().items():
            response[name] = value
        return response
    return json_response(dict(await comparison_run(comparison)), comparison.rate_limits)
