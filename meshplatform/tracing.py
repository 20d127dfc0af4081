"""OpenTelemetry tracing, off unless MESH_OTEL_ENABLED: the helpers the pipeline's steps call.

Off (the default), every helper returns at once after one check of a module global (no tracer,
no span objects, no context work: `span()` hands back one shared no-op context manager), and the
ASGI application is the handler itself. On, `tracing_configure()` (web workers, Celery worker
processes) installs an SDK tracer provider exporting OTLP over HTTP (the standard
`OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` variables apply)
and instruments Celery. Attributes follow OTel's GenAI semantic conventions; spans carry ids,
model names, token counts and statuses, never prompts, completions or keys.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from meshplatform.errors import GatewayError

REQUEST_ID = "mesh.request_id"
AttemptSpan: TypeAlias = Span  # an upstream attempt's span, handed from the fallback loop to the relay
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_tracer: Tracer | None = None  # set by tracing_configure(); None means tracing is off
_propagator = TraceContextTextMapPropagator()
# API paths without ids, which name their server spans (`POST /v1/chat/completions`); others are
# named by their method alone, as OTel's HTTP conventions ask when the route is not known.
NAMED_PATHS = frozenset(
    "/v1/" + name
    for name in (
        "chat/completions", "embeddings", "images/generations", "responses", "compare", "batches",
        "files", "models", "templates", "jobs", "usage", "openapi.json",
    )
)  # fmt: skip


def tracing_enabled() -> bool:
    """MESH_OTEL_ENABLED, unless the standard OTEL_SDK_DISABLED says otherwise."""
    from django.conf import settings

    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return bool(settings.MESH_OTEL_ENABLED) and not disabled


def tracing_configure(*, service_name: str = "mesh-gateway") -> bool:
    """Install the exporting tracer provider and the Celery instrumentation in this process, once
    (a prefork child inherits them: the SDK restarts its export thread after a fork). Returns
    whether tracing is on."""
    global _tracer
    if not tracing_enabled():
        return False
    if _tracer is not None:
        return True
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("mesh")
    # Publishing a task carries the trace in its headers; running one continues it.
    CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    return True


class _NoSpan:
    """What `span()` returns when tracing is off: entering and leaving it does nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


NO_SPAN = _NoSpan()


def span(name: str, request_id: str | None = None) -> AbstractContextManager[object]:
    """A child span of the current one around a pipeline step (`with tracing.span("mesh.auth"):`);
    an exception leaving it sets its status to ERROR and its `error.type`."""
    if _tracer is None:
        return NO_SPAN
    return _step(_tracer, name, {REQUEST_ID: request_id} if request_id is not None else None)


@contextmanager
def _step(tracer: Tracer, name: str, attributes: dict[str, str] | None) -> Iterator[Span]:
    # Not the SDK's exception recording: its event and status carry the error's message, which
    # may quote what the client sent; the error's code says what went wrong without that.
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as error:
            error_noted(current, error)
            raise


def error_noted(current: Span, error: BaseException) -> None:
    """`error.type` (a GatewayError's code, else the exception's class) and status ERROR."""
    kind = error.code if isinstance(error, GatewayError) else type(error).__name__
    current.set_attribute("error.type", kind)
    current.set_status(Status(StatusCode.ERROR, kind))


def server_request_id(request_id: str) -> None:
    """Tag the current server span with the request id RequestIdMiddleware gave the request."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    if getattr(current, "kind", None) is SpanKind.SERVER:
        current.set_attribute(REQUEST_ID, request_id)


def request_span(request_id: str) -> AbstractContextManager[object]:
    """Around one request's pipeline: nothing more when it is the HTTP request's own (the server
    span has its id); elsewhere (a Celery job, a batch line, one model's run of a compare) a
    `mesh.request` span carrying `mesh.request_id`."""
    if _tracer is None:
        return NO_SPAN
    current = trace.get_current_span()
    own = getattr(current, "attributes", {}).get(REQUEST_ID) == request_id
    if own and getattr(current, "kind", None) is SpanKind.SERVER:
        return NO_SPAN
    return _step(_tracer, "mesh.request", {REQUEST_ID: request_id})


# One upstream attempt: a GenAI client span `chat <model>`.


def attempt_start(*, provider: str, model: str, mesh_model: str, number: int) -> AttemptSpan | None:
    """The span of one try at one provider (ended by `attempt_answered`, `attempt_failed`, or for
    a stream `attempt_stream_ended`); None when tracing is off."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "mesh.model": mesh_model,
            "mesh.attempt": number,
        },
    )


def attempt_answered(
    attempt: AttemptSpan | None, payload: dict[str, Any], *, input_tokens: int, output_tokens: int
) -> None:
    """A whole answer (OpenAI's `chat.completion` as the upstream sent it, before Mesh renames
    its model): response model, finish reasons and usage, then the span ends."""
    if attempt is None:
        return
    _response_noted(attempt, payload)
    reasons = [str(c.get("finish_reason")) for c in payload.get("choices") or () if c.get("finish_reason")]
    attempt.set_attribute("gen_ai.response.finish_reasons", reasons)
    _usage_noted(attempt, input_tokens, output_tokens)
    attempt.set_attribute("http.response.status_code", 200)
    attempt.end()


def attempt_failed(attempt: AttemptSpan | None, error: BaseException) -> None:
    """The try failed (an upstream error, a timeout, a cancellation): its status and error type."""
    if attempt is None:
        return
    if isinstance(error, GatewayError):
        status = error.provider_error.get("status") if error.provider_error is not None else None
        if isinstance(status, int):
            attempt.set_attribute("http.response.status_code", status)
    error_noted(attempt, error)
    attempt.end()


def stream_observed(
    attempt: AttemptSpan | None, first_chunk: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """A stream's chunks, noting the response model and finish reasons on its attempt's span as
    they pass (`rest` itself when tracing is off); the span stays open until the stream ends."""
    if attempt is None:
        return rest
    attempt.set_attribute("http.response.status_code", 200)
    _response_noted(attempt, first_chunk)
    reasons: list[str] = []
    _reasons_noted(attempt, first_chunk, reasons)
    return _observing(attempt, rest, reasons)


async def _observing(
    attempt: Span, rest: AsyncIterator[dict[str, Any]], reasons: list[str]
) -> AsyncIterator[dict[str, Any]]:
    async for chunk in rest:
        _reasons_noted(attempt, chunk, reasons)
        yield chunk


def attempt_stream_ended(
    attempt: AttemptSpan | None,
    *,
    input_tokens: int,
    output_tokens: int,
    estimated: bool,
    failure: GatewayError | None,
    cancelled: bool,
) -> None:
    """The stream is over (to its end, failed mid-stream, or the client left): its usage, then
    the span ends."""
    if attempt is None or not attempt.is_recording():
        return
    _usage_noted(attempt, input_tokens, output_tokens)
    attempt.set_attribute("mesh.usage.estimated", estimated)
    if failure is not None:
        error_noted(attempt, failure)
    elif cancelled:
        attempt.set_attribute("mesh.stream.cancelled", True)
    attempt.end()


def _response_noted(attempt: Span, payload: dict[str, Any]) -> None:
    model, response_id = payload.get("model"), payload.get("id")
    if isinstance(model, str):
        attempt.set_attribute("gen_ai.response.model", model)
    if isinstance(response_id, str):
        attempt.set_attribute("gen_ai.response.id", response_id)


def _reasons_noted(attempt: Span, chunk: dict[str, Any], reasons: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        reason = choice.get("finish_reason")
        if reason:
            reasons.append(str(reason))
            attempt.set_attribute("gen_ai.response.finish_reasons", reasons)


def _usage_noted(attempt: Span, input_tokens: int, output_tokens: int) -> None:
    attempt.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    attempt.set_attribute("gen_ai.usage.output_tokens", output_tokens)


# The server span: one per HTTP request under /v1/, continuing the client's W3C trace.


def asgi_traced(app: ASGIApp) -> ASGIApp:
    """`app` itself when tracing is off; on, `app` inside a server span per API request, which
    ends once the response is sent (a stream's last event included)."""
    if _tracer is None:
        return app
    tracer = _tracer

    async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or not path.startswith("/v1/"):
            await app(scope, receive, send)
            return
        carrier = {
            name.decode("latin1"): value.decode("latin1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        method = scope.get("method", "GET")
        parent = _propagator.extract(carrier)
        attributes = {"http.request.method": method, "url.path": path}
        server = tracer.start_span(
            f"{method} {path}" if path in NAMED_PATHS else method,  # no ids in span names
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(server, parent))

        async def send_noted(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 0))
                server.set_attribute("http.response.status_code", status)
                if status >= 500:
                    server.set_status(Status(StatusCode.ERROR))
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        server.set_attribute(REQUEST_ID, value.decode("latin1"))
            await send(message)

        try:
            await app(scope, receive, send_noted)
        except BaseException as error:
            error_noted(server, error)
            raise
        finally:
            otel_context.detach(token)
            server.end()

    return traced
