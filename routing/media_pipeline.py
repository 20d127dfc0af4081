"""Embeddings and image generation, top to bottom, with no HTTP in them: rate limit → choose the
model (of the endpoint's kind) → hold the worst case → note in flight → call with retries and
fallback → a billed answer.

As with chat completions (routing.pipeline), every outcome after authentication is billed and
recorded by the request's one `usage.ledger.LedgerEntry`, whose event names the endpoint.
Embeddings are billed from the upstream's token count at the model's input price (estimated from
the texts where the upstream reports none: Gemini); images per image, by the size and quality
asked, from the catalog's `image_prices`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from keys.auth import Admission
from keys.limits import RateLimitState
from keys.spend import spend_reserve
from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, GatewayError
from routing.catalog import Catalog, CatalogEntry, catalog_current
from routing.media_schema import EmbeddingInput, EmbeddingsRequest, ImagesRequest
from routing.providers.media import (
    MediaAnswer,
    MediaCall,
    embeddings_answer,
    embeddings_requests,
    images_answer,
    images_request,
)
from routing.resolve import Candidate, candidates_resolve, model_resolve
from routing.upstream import call_with_fallback, timeout_error, upstream_post
from usage.estimate import tokens_from_bytes
from usage.ledger import LedgerEntry, ServedBy
from usage.types import TokenUsage

EMBEDDINGS = "embeddings"
IMAGES = "images.generations"
EXAMPLE_MODEL = {"embedding": "openai/text-embedding-3-small", "image": "openai/dall-e-3"}


@dataclass(frozen=True, slots=True)
class MediaResult:
    """A whole answer, already billed: OpenAI's object (its `model` the id that served), and the
    key's rate-limit state (the `x-ratelimit-*` headers)."""

    payload: dict[str, Any]
    model: str
    rate_limits: RateLimitState


@dataclass(frozen=True, slots=True)
class ImageTariff:
    """Images are priced per image (the catalog's price for the size and quality asked), whatever
    tokens the upstream reports: `count` images at `per_image_usd`."""

    per_image_usd: Decimal
    count: int

    def cost(self, tokens: TokenUsage) -> Decimal:
        return self.per_image_usd * self.count


async def embeddings_create(
    *, admission: Admission, request: EmbeddingsRequest, request_id: str
) -> MediaResult:
    """Embed `request.input` with the admitted key's model; a refusal or failure is raised as a
    `GatewayError` (already recorded)."""
    entry = LedgerEntry(
        key=admission.key, request_id=request_id, session_id=request.session_id, endpoint=EMBEDDINGS
    )
    async with entry.guard():
        with admission.verdict() as limits:
            catalog = await catalog_current()
            candidates = _candidates(entry, catalog, request.model, "embedding")
            _dimensions_check(candidates[0].entry, request.dimensions)
            body = request.upstream_fields()
            timeout = settings.MESH_UPSTREAM_TIMEOUT_S
            bound, expected = _input_tokens(request.inputs, candidates[0].entry)
            worst = max(c.entry.cost(TokenUsage(prompt_tokens=bound)) for c in candidates)
            await _hold(entry, worst, candidates[0].entry.cost(TokenUsage(prompt_tokens=expected)), timeout)
            await _note_in_flight(entry, candidates[0].served_by, expected, timeout)

            async def once(candidate: Candidate, budget: float) -> tuple[Candidate, MediaAnswer]:
                return candidate, await _embed_once(candidate, body, budget)

            candidate, answer = await call_with_fallback(candidates, entry.attempts, timeout, once)
            await entry.served(candidate.served_by, answer.usage, estimated=answer.estimated)
            return _result(answer, candidate, limits)


async def _embed_once(candidate: Candidate, body: dict[str, Any], budget: float) -> MediaAnswer:
    """One try at one provider: its calls (Gemini's batches in turn, sharing the one budget)."""
    call = MediaCall(upstream_model=candidate.entry.upstream_name, body=body)
    adapter = candidate.adapter
    deadline = time.monotonic() + budget
    replies = []
    for upstream_request in embeddings_requests(adapter, call):
        left = deadline - time.monotonic()
        if left <= 0:
            raise timeout_error(candidate, budget)
        replies.append(await upstream_post(candidate, upstream_request, left))
    return embeddings_answer(adapter, replies, call)


async def images_generate(*, admission: Admission, request: ImagesRequest, request_id: str) -> MediaResult:
    """Generate `request.n` images; billed per image returned at the catalog's price."""
    entry = LedgerEntry(
        key=admission.key, request_id=request_id, session_id=request.session_id, endpoint=IMAGES
    )
    async with entry.guard():
        with admission.verdict() as limits:
            catalog = await catalog_current()
            candidates = _candidates(entry, catalog, request.model, "image")
            price = image_price(candidates[0].entry, size=request.size, quality=request.quality)
            body = request.upstream_fields()
            timeout = settings.MESH_UPSTREAM_TIMEOUT_S
            await _hold(entry, price * request.n, price * request.n, timeout)
            asked = ServedBy(
                candidates[0].entry.model_id, candidates[0].adapter.name, ImageTariff(price, request.n)
            )
            await _note_in_flight(entry, asked, 0, timeout)

            async def once(candidate: Candidate, budget: float) -> tuple[Candidate, MediaAnswer]:
                call = MediaCall(upstream_model=candidate.entry.upstream_name, body=body)
                reply = await upstream_post(candidate, images_request(candidate.adapter, call), budget)
                return candidate, images_answer(candidate.adapter, reply)

            candidate, answer = await call_with_fallback(candidates, entry.attempts, timeout, once)
            count = len(answer.payload["data"])
            price = _price_served(candidate.entry, answer.payload, asked=price)
            served = ServedBy(candidate.entry.model_id, candidate.adapter.name, ImageTariff(price, count))
            await entry.served(served, answer.usage, images=count)
            return _result(answer, candidate, limits)


def _candidates(entry: LedgerEntry, catalog: Catalog, model: str | None, kind: str) -> list[Candidate]:
    """The model asked, else the key's default when it is a model of this kind (a chat default
    does not apply here): 422 without one, 400 for a model of another kind."""
    key = entry.key
    model_id = model or _default_of_kind(catalog, key, kind)
    if model_id is None:
        raise BadRequest(
            f"Invalid request: model: name an {kind} model, e.g. {EXAMPLE_MODEL[kind]!r}.",
            param="model",
            details=[
                {"loc": ["body", "model"], "msg": f"Field required (an {kind} model)", "type": "missing"}
            ],
        )
    entry.model_asked(model_id)
    return candidates_resolve(catalog=catalog, model_id=model_id, fallbacks=None, key=key, kind=kind)


def _default_of_kind(catalog: Catalog, key: ResolvedKey, kind: str) -> str | None:
    if not key.default_model:
        return None
    try:
        entry = model_resolve(catalog=catalog, name=key.default_model, tenant_id=key.tenant_id)
    except GatewayError:
        return None
    return key.default_model if entry.kind == kind else None


def _dimensions_check(entry: CatalogEntry, dimensions: int | None) -> None:
    if dimensions is not None and entry.dimensions is not None and dimensions > entry.dimensions:
        msg = f"at most {entry.dimensions} for {entry.model_id}"
        raise BadRequest(
            f"Invalid request: dimensions: {msg}",
            param="dimensions",
            details=[{"loc": ["body", "dimensions"], "msg": msg, "type": "less_than_equal"}],
        )


def _input_tokens(inputs: EmbeddingInput, entry: CatalogEntry) -> tuple[int, int]:
    """(the most, the expected) input tokens: token arrays are counted exactly; a text costs at
    most one token per byte (and never more than the model's context window, which the upstream
    refuses past), about one per four bytes as expected."""
    if inputs.token_arrays is not None:
        exact = sum(len(array) for array in inputs.token_arrays)
        return exact, exact
    bound = expected = 0
    for text in inputs.texts or ():
        size = len(text) if text.isascii() else len(text.encode())
        bound += min(size, entry.context_window)
        expected += max(1, tokens_from_bytes(size))
    return bound, expected


DEFAULT_SIZE, DEFAULT_QUALITY = "1024x1024", "standard"  # OpenAI's defaults


def image_price(entry: CatalogEntry, *, size: str | None, quality: str | None) -> Decimal:
    """The catalog's price of one image at `size` and `quality`: 422 naming an unknown one.
    Not given, they are OpenAI's defaults (1024x1024, standard) where the model lists them; else,
    and for `auto` (the upstream chooses), the most expensive the model lists."""
    prices = entry.image_prices
    if not prices:
        raise BadRequest(f"The model {entry.model_id!r} has no image prices in the catalog.", param="model")
    if quality is None:
        quality = DEFAULT_QUALITY if DEFAULT_QUALITY in prices else "auto"
    if quality == "auto":
        qualities = list(prices)
    elif quality in prices:
        qualities = [quality]
    else:
        raise _unknown("quality", quality, sorted(prices), entry)
    sizes = {name for q in qualities for name in prices[q]}
    if size is None:
        size = DEFAULT_SIZE if DEFAULT_SIZE in sizes else "auto"
    if size == "auto":
        chosen = sizes
    elif size in sizes:
        chosen = {size}
    else:
        raise _unknown("size", size, sorted(sizes), entry)
    return max(prices[q][s] for q in qualities for s in chosen if s in prices[q])


def _price_served(entry: CatalogEntry, payload: dict[str, Any], *, asked: Decimal) -> Decimal:
    """The price of what the upstream says it made (gpt-image-1 answers with the `quality` and
    `size` it chose for `auto`), never above the price asked and held; else the price asked."""
    quality, size = payload.get("quality"), payload.get("size")
    sizes = entry.image_prices.get(quality) if isinstance(quality, str) else None
    made = sizes.get(size) if sizes is not None and isinstance(size, str) else None
    return min(made, asked) if made is not None else asked


def _unknown(field: str, value: str, known: list[str], entry: CatalogEntry) -> BadRequest:
    msg = f"{value!r} is not one of {entry.model_id}'s {field}s: {', '.join(known)}"
    return BadRequest(
        f"Invalid request: {field}: {msg}",
        param=field,
        details=[{"loc": ["body", field], "msg": msg, "type": "enum"}],
    )


async def _hold(entry: LedgerEntry, worst_usd: Decimal, expected_usd: Decimal, timeout: float) -> None:
    """The spend caps before the upstream call: the worst case held against hard caps, the
    expected cost counted against soft ones (402 if it does not fit, or a soft cap is reached)."""
    key = entry.key
    hard, soft = key.hard_capped, key.soft_capped
    if not (hard or soft):
        return
    entry.hold = await spend_reserve(
        key=key,
        request_id=entry.request_id,
        worst_case_usd=worst_usd if hard else Decimal(0),
        expected_usd=expected_usd if soft else Decimal(0),
        at=entry.started_at,
        hold_s=timeout,
    )


async def _note_in_flight(entry: LedgerEntry, by: ServedBy, prompt_tokens: int, timeout: float) -> None:
    """What to bill if this worker dies before the final record (finalised by beat)."""
    finalise_after = entry.started_at + timeout + settings.MESH_STREAM_FINALISE_GRACE_S
    await entry.in_flight(by, prompt_tokens=prompt_tokens, finalise_after=finalise_after)


def _result(answer: MediaAnswer, candidate: Candidate, limits: RateLimitState) -> MediaResult:
    payload = answer.payload
    payload["model"] = candidate.entry.model_id
    return MediaResult(payload=payload, model=candidate.entry.model_id, rate_limits=limits)
