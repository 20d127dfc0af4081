"""Running a comparison: each model's run is one `routing.pipeline.chat_completion` of its own
(its own request id, its own usage event carrying the comparison id), all of them concurrently;
one model failing never fails the others.

The caller has authenticated the key, counted the comparison against its rate limits (one
request per model) and checked the request (`routing.compare.request`). The spend caps take the
runs as a whole (`routing.compare.spend`): a 402 refuses the comparison, not some of its models.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypedDict

from ulid import ULID

from keys.auth import Admission
from keys.limits import UNLIMITED, RateLimitState
from keys.limits_many import rate_limit_count_many
from keys.types import ResolvedKey
from meshplatform.errors import ErrorBody, GatewayError, InternalError, RateLimited
from meshplatform.request_ids import new_request_id
from routing.catalog import Catalog, catalog_current
from routing.compare.request import CompareRequest, compare_models_check
from routing.compare.spend import CompareSpendGate
from routing.pipeline import ChatAccepted, ChatCompletionResult, chat_completion, request_refused
from routing.relay import DONE, CompletionStream, _carries_output, sse_event
from routing.schema import ChatCompletionRequest
from templates_app.expansion import template_expand
from usage.types import TokenUsage

logger = logging.getLogger(__name__)
QUEUE_EVENTS = 256  # events buffered between the model streams and a slow client


def new_comparison_id() -> str:
    return f"cmp_{ULID()}"


class CompareUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int


class CompareResultObject(TypedDict):
    """One model's side of the comparison, as the API renders it."""

    model: str
    request_id: str
    status: int
    completion: dict[str, Any] | None
    error: ErrorBody | None
    latency_ms: int
    ttft_ms: int | None
    usage: CompareUsage | None
    cost_usd: str


class CompareObject(TypedDict):
    object: str
    comparison_id: str
    created: int
    session_id: str | None
    results: list[CompareResultObject]
    total_cost_usd: str


@dataclass(slots=True)
class ModelRun:
    """One model's run: its request, and what it produced once it is over."""

    model: str
    chat: ChatCompletionRequest
    request_id: str
    started: float = field(default_factory=time.monotonic)
    status: int = 0
    completion: dict[str, Any] | None = None
    error: ErrorBody | None = None
    latency_ms: int = 0
    ttft_ms: int | None = None
    usage: TokenUsage | None = None
    cost_usd: Decimal = Decimal(0)

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def failed(self, error: GatewayError) -> None:
        self.status, self.error, self.latency_ms = error.http_status, error.body(), self._elapsed_ms()

    def first_output(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms()

    def ended(self, *, usage: TokenUsage, catalog: Catalog, served: str) -> None:
        self.latency_ms, self.usage = self._elapsed_ms(), usage
        entry = catalog.get(served)
        self.cost_usd = entry.cost(usage) if entry is not None else Decimal(0)
        self.status = self.status or 200

    def as_object(self) -> CompareResultObject:
        usage = self.usage
        return {
            "model": self.model,
            "request_id": self.request_id,
            "status": self.status,
            "completion": self.completion,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "usage": None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "cached_tokens": usage.cached_tokens,
            },
            "cost_usd": str(self.cost_usd),
        }


def _unexpected(error: Exception, run: ModelRun) -> InternalError:
    logger.exception("compare run %s (%s) failed", run.request_id, run.model, exc_info=error)
    return InternalError("The gateway failed while running this model.")


@dataclass(slots=True)
class Comparison:
    """A comparison ready to run: the key (counted for every model), the runs, and the gate that
    holds their spend as a whole (None when neither the key nor its tenant has a cap)."""

    comparison_id: str
    key: ResolvedKey
    rate_limits: RateLimitState
    runs: list[ModelRun]
    catalog: Catalog
    gate: CompareSpendGate | None
    created: int = field(default_factory=lambda: int(time.time()))

    def as_object(self) -> CompareObject:
        total = sum((run.cost_usd for run in self.runs), Decimal(0))
        return {
            "object": "compare",
            "comparison_id": self.comparison_id,
            "created": self.created,
            "session_id": self.runs[0].chat.session_id,
            "results": [run.as_object() for run in self.runs],
            "total_cost_usd": str(total),
        }

    async def chat_run(self, run: ModelRun) -> ChatCompletionResult | CompletionStream:
        """The run's chat completion; the gate learns when it ends without reaching its hold step."""
        try:
            result = await chat_completion(
                admission=Admission(key=self.key, limits=self.rate_limits),
                chat=run.chat,
                request_id=run.request_id,
                comparison_id=self.comparison_id,
                spend_gate=self.gate,
            )
        finally:
            if self.gate is not None:
                self.gate.withdraw(run.request_id)
        if isinstance(result, ChatAccepted):  # compare_request_validate refuses async_mode
            raise InternalError("A comparison's run was queued as a job.")
        return result

    def refused_as_a_whole(self) -> GatewayError | None:
        return self.gate.refusal if self.gate is not None else None


async def comparison_prepare(*, key: ResolvedKey, compare: CompareRequest) -> Comparison:
    """Check what a comparison needs before any model runs (its models for this key, its template
    once) and give every model its run. Raises the 4xx naming the field."""
    catalog = await catalog_current()
    compare_models_check(catalog=catalog, key=key, models=compare.models)
    first = compare.chats[0]
    if first.template is not None:
        await template_expand(tenant_id=key.tenant_id, ref=first.template, variables=first.variables or {})
    runs = [
        ModelRun(model=model, chat=chat, request_id=new_request_id())
        for model, chat in zip(compare.models, compare.chats, strict=True)
    ]
    capped = key.hard_capped or key.soft_capped
    gate = (
        CompareSpendGate(key=key, request_ids=[run.request_id for run in runs], at=time.time())
        if capped
        else None
    )
    return Comparison(
        comparison_id=new_comparison_id(),
        key=key,
        rate_limits=UNLIMITED,
        runs=runs,
        catalog=catalog,
        gate=gate,
    )


async def compare_admit(*, key: ResolvedKey, key_hash: str, requests: int) -> Admission:
    """Count `requests` requests of the key at once (429 carried in the Admission, nothing counted)."""
    try:
        return Admission(
            key=key, limits=await rate_limit_count_many(key=key, key_hash=key_hash, requests=requests)
        )
    except RateLimited as refusal:
        return Admission(key=key, limits=UNLIMITED, refusal=refusal)


async def compare_start(
    *, key: ResolvedKey, key_hash: str, request_id: str, parse: Callable[[], CompareRequest]
) -> Comparison:
    """A comparison checked, counted and ready to run, or its refusal as a whole (4xx, recorded
    as one usage event under `request_id`, counted as one request like any refused request).

    Order: the body (`parse`), the models and template, then the rate limits count one request
    per model, all or none (429). The spend caps come when the runs hold their worst cases."""
    compare: CompareRequest | None = None
    try:
        compare = parse()
        comparison = await comparison_prepare(key=key, compare=compare)
    except GatewayError as error:
        admission = await compare_admit(key=key, key_hash=key_hash, requests=1)
        session_id = compare.session_id if compare is not None else None
        await request_refused(admission=admission, request_id=request_id, error=error, session_id=session_id)
    admission = await compare_admit(key=key, key_hash=key_hash, requests=len(comparison.runs))
    if admission.refusal is not None:
        refusal = admission.refusal
        await request_refused(
            admission=admission, request_id=request_id, error=refusal, session_id=compare.session_id
        )
    comparison.rate_limits = admission.limits
    return comparison


async def comparison_run(comparison: Comparison) -> CompareObject:
    """Every model's whole answer side by side; the 402 when the spend caps refuse the comparison."""
    await asyncio.gather(*(_run_whole(comparison, run) for run in comparison.runs))
    refusal = comparison.refused_as_a_whole()
    if refusal is not None:
        refusal.extra_headers.update(comparison.rate_limits.headers())
        raise refusal
    return comparison.as_object()


async def _run_whole(comparison: Comparison, run: ModelRun) -> None:
    try:
        result = await comparison.chat_run(run)
    except GatewayError as error:
        run.failed(error)
        return
    except Exception as error:
        run.failed(_unexpected(error, run))
        return
    assert isinstance(result, ChatCompletionResult)
    run.completion = result.payload
    run.ended(usage=result.usage, catalog=comparison.catalog, served=result.model)
    run.ttft_ms = run.latency_ms  # a whole answer: its first token reaches the caller with the rest


class CompareStream:
    """The runs streaming side by side as one Server-Sent Events stream: each model's chunks
    wrapped and tagged with the model (`compare.chunk`), a run that failed before its first chunk
    as `compare.error`, then one `compare.summary` and `data: [DONE]`.

    `aclose()` (the view's response calls it however the response ends) cancels the runs still
    streaming: each is billed for what its upstream produced, as a chat stream is at its close."""

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_EVENTS)
        self._streams: list[CompletionStream] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def open(self) -> None:
        """Start every run; return once the spend caps have taken the comparison (or raise their
        402), so a refusal is an HTTP status and not an event."""
        self._tasks = [asyncio.ensure_future(self._produce(run)) for run in self.comparison.runs]
        gate = self.comparison.gate
        if gate is None:
            return
        try:
            await gate.decided()
        except BaseException:
            await self.aclose()
            raise
        if gate.refusal is not None:
            await self.aclose()
            gate.refusal.extra_headers.update(self.comparison.rate_limits.headers())
            raise gate.refusal

    def sse(self) -> AsyncGenerator[bytes, None]:
        return self._events()

    async def _events(self) -> AsyncGenerator[bytes, None]:
        try:
            running = len(self._tasks)
            while running:
                event = await self._queue.get()
                if event is None:
                    running -= 1
                    continue
                yield event
            yield sse_event({**self.comparison.as_object(), "object": "compare.summary"})
            yield DONE
        finally:
            await self.aclose()

    async def _produce(self, run: ModelRun) -> None:
        """One run's events into the queue, then its end (None). A cancelled run (`aclose`) puts
        nothing more: nobody reads the queue then."""
        try:
            await self._relay(run)
        except GatewayError as error:
            run.failed(error)
        except Exception as error:
            run.failed(_unexpected(error, run))
        if run.error is not None and run.completion is None and run.usage is None:
            tag = {"model": run.model, "request_id": run.request_id}
            await self._queue.put(
                sse_event({"object": "compare.error", **tag, "status": run.status, "error": run.error})
            )
        await self._queue.put(None)

    async def _relay(self, run: ModelRun) -> None:
        stream = await self.comparison.chat_run(run)
        assert isinstance(stream, CompletionStream)
        self._streams.append(stream)
        tag = {"model": run.model, "request_id": run.request_id}
        async with stream:
            async for chunk in stream.chunks():
                if run.ttft_ms is None and _carries_output(chunk):
                    run.first_output()
                await self._queue.put(sse_event({"object": "compare.chunk", **tag, "chunk": chunk}))
        run.ended(usage=stream.usage, catalog=self.comparison.catalog, served=stream.model)
        if stream.failure is not None:
            run.status, run.error = stream.failure.http_status, stream.failure.body()

    async def aclose(self) -> None:
        """Stop the runs still going and settle their streams (each billed once, for what it produced)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.shield(asyncio.gather(*self._tasks, return_exceptions=True))
        for stream in self._streams:
            await asyncio.shield(stream.aclose())
