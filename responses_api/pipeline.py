"""A Responses API request, top to bottom: the conversation so far (previous_response_id) → the
request as a chat completion → `routing.pipeline.chat_completion` (auth already done; rate limits,
caps and holds, session_id, fallback and the one usage event all happen there) → the response
object or its event stream → stored for the tenant (unless `store` is false).

`openai/*` candidates are asked natively at the upstream's `/v1/responses` (`responses_api.native`,
swapped in by `chat_completion`'s `adapt`); every other provider gets the chat translation. The
conversation is Mesh's (stored per tenant), so it continues on any provider either way. What the
translation cannot carry (built-in tools, their calls) is refused, naming it, unless every
candidate is native; the chat body still prices the request's hold.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from keys.auth import Admission
from keys.limits import RateLimitState
from meshplatform.errors import GatewayError
from responses_api.events import ResponseEvents, sse_encode
from responses_api.native import native_body, native_candidates, natively_served
from responses_api.schema import ResponsesRequest
from responses_api.services import conversation_before, conversation_bounds_check, stored_response_save
from responses_api.translate import (
    chat_request_body,
    completion_response,
    native_response,
    new_id,
    pricing_body,
    request_echo,
    stored_input_items,
)
from routing.pipeline import ChatCompletionResult, chat_completion, request_refused
from routing.relay import CompletionStream
from routing.resolve import Candidate
from routing.schema import ChatCompletionRequest, validate_chat_request


@dataclass(frozen=True, slots=True)
class ResponseResult:
    """A whole response, billed and (if asked) stored."""

    payload: dict[str, Any]
    rate_limits: RateLimitState


@dataclass(frozen=True, slots=True)
class _Turn:
    """What the request adds to the conversation, what it continues, the chat request it is for
    translated providers (and for pricing), and why it cannot be translated, if it cannot."""

    context: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    chat: ChatCompletionRequest
    untranslatable: GatewayError | None
    native: dict[str, Any]

    def adapt(self, candidates: list[Candidate]) -> list[Candidate]:
        """OpenAI candidates asked natively; the translation's refusal when another must take it."""
        if self.untranslatable is not None and not natively_served(candidates):
            raise self.untranslatable
        return native_candidates(candidates, self.native)


class ResponseStream:
    """An open response stream: `sse()` once; `aclose()` settles the chat stream beneath it
    (billing what it produced, also when the client left mid-stream)."""

    def __init__(self, stream: CompletionStream, events: ResponseEvents, save: _Saver | None) -> None:
        self._stream = stream
        self._events = events
        self._save = save
        self.rate_limits = stream.rate_limits

    async def sse(self) -> AsyncGenerator[bytes, None]:
        for event in self._events.start():
            yield sse_encode(event)
        async for chunk in self._stream.chunks():
            for event in self._events.feed(chunk):
                yield sse_encode(event)
        final, closing = self._events.finish()
        if self._save is not None:
            await self._save.save(final)  # retrievable before the client reads `response.completed`
        for event in closing:
            yield sse_encode(event)

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass(frozen=True, slots=True)
class _Saver:
    admission: Admission
    request_id: str
    turn: _Turn

    async def save(self, response: dict[str, Any]) -> None:
        await stored_response_save(
            tenant_id=self.admission.key.tenant_id,
            key_id=self.admission.key.key_id,
            request_id=self.request_id,
            response=response,
            context=self.turn.context,
            input_items=self.turn.input_items,
        )


async def response_create(
    *, admission: Admission, request: ResponsesRequest, request_id: str
) -> ResponseResult | ResponseStream:
    """Run `request` for the admitted key; a refusal or failure is raised (already recorded)."""
    turn = await _turn(admission, request, request_id)
    result = await chat_completion(
        admission=admission, chat=turn.chat, request_id=request_id, adapt=turn.adapt
    )
    response_id, created_at = new_id("resp"), int(time.time())
    saver = _Saver(admission=admission, request_id=request_id, turn=turn) if request.store else None
    if isinstance(result, CompletionStream):
        events = ResponseEvents(
            response_id=response_id, created_at=created_at, model=result.model, echo=request_echo(request)
        )
        return ResponseStream(result, events, saver)
    if not isinstance(result, ChatCompletionResult):  # async_mode is never set on the translated request
        raise AssertionError("a Responses request is never queued")
    payload = (native_response if result.payload.get("object") == "response" else completion_response)(
        response_id=response_id,
        created_at=created_at,
        model=result.model,
        echo=request_echo(request),
        completion=result.payload,
    )
    if saver is not None:
        await saver.save(payload)
    return ResponseResult(payload=payload, rate_limits=result.rate_limits)


async def _turn(admission: Admission, request: ResponsesRequest, request_id: str) -> _Turn:
    """The conversation and its chat request; any refusal here is recorded for the key."""
    try:
        context = await conversation_before(
            tenant_id=admission.key.tenant_id, previous_response_id=request.previous_response_id
        )
        input_items = stored_input_items(request.items())
        items = [*context, *input_items]
        conversation_bounds_check(len(items))
        untranslatable: GatewayError | None = None
        try:
            body = chat_request_body(request, items, first_input=len(context))
        except GatewayError as error:  # refused later unless every candidate is native
            untranslatable = error
            body = pricing_body(request, items)
        chat = validate_chat_request(body)
    except GatewayError as error:
        await request_refused(
            admission=admission, request_id=request_id, error=error, session_id=request.session_id
        )
    return _Turn(
        context=context,
        input_items=input_items,
        chat=chat,
        untranslatable=untranslatable,
        native=native_body(request.raw, items),
    )
