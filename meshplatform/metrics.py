"""Prometheus metrics: the definitions (multiprocess mode, so every uvicorn worker counts), the
label-set cache the hot path uses, and `GET /metrics` with its scrape-time gauges.

Every worker writes its samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (set by the
settings before this module is imported); a scrape sums all of them. Gauges about shared state
(PostgreSQL and Redis reachable, the ledger's lag, Celery's queue) are computed when scraped, not
per request. Labels are bounded: status, error code, catalog model and provider are finite sets,
and tenants get their own label only when the operator names them (MESH_METRICS_TENANTS).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshplatform.errors import NotFound, Unauthorized, error_response
from meshplatform.metric_samples import CounterSamples, samples_write
from meshplatform.request_ids import request_id_of

# Samples are taken only where they can be read: with MESH_METRICS_TOKEN unset /metrics is a 404,
# so a deployment that does not scrape Prometheus pays nothing per request for it.
METRICS_ON = bool(settings.MESH_METRICS_TOKEN)

NONE = "none"  # the label of a dimension a request never reached (no model resolved, no tenant)
OTHER_TENANT = "other"  # every tenant the operator did not name in MESH_METRICS_TENANTS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LATENCY_BOUNDS = (*LATENCY_BUCKETS, math.inf)  # the histograms' buckets, +Inf appended as the client does

REQUESTS = Counter(
    "mesh_requests",
    "Requests answered, by HTTP status, error code, model served, provider and tenant.",
    ["status", "error_code", "model", "provider", "tenant"],
)
REQUEST_DURATION = Histogram(
    "mesh_request_duration_seconds",
    "Time from admission to the final record (a stream's whole length), by model and provider.",
    ["model", "provider"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "mesh_time_to_first_token_seconds",
    "Time from admission to the first content sent to the client, by model and provider.",
    ["model", "provider"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "mesh_tokens",
    "Tokens billed, by kind (prompt, completion, cached), model, provider and tenant.",
    ["kind", "model", "provider", "tenant"],
)
COST = Counter(
    "mesh_cost_usd",
    "Cost billed in USD at catalog prices, by model, provider and tenant.",
    ["model", "provider", "tenant"],
)
UPSTREAM_ERRORS = Counter(
    "mesh_upstream_errors",
    "Upstream attempts that failed, by provider and error code.",
    ["provider", "error_code"],
)
UPSTREAM_RETRIES = Counter(
    "mesh_upstream_retries",
    "Upstream attempts that asked the same model again after a failure, by provider.",
    ["provider"],
)
FALLBACKS = Counter(
    "mesh_fallbacks",
    "Upstream attempts that moved on to another model after a failure, by the provider moved to.",
    ["provider"],
)
REFUSALS = Counter(
    "mesh_refusals",
    "Requests refused by a limit, by reason (rate_limit, spend_cap) and tenant.",
    ["reason", "tenant"],
)
IN_FLIGHT = Gauge(
    "mesh_in_flight",
    "Requests and streams being served now, by kind (requests, streams).",
    ["kind"],
    multiprocess_mode="livesum",
)


class Children:
    """A counter's buffered children by label tuple (meshplatform.metric_samples), created once:
    `labels()` validates and locks on every call, the hot path pays one dict lookup instead.
    Bounded by the metric's bounded labels."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterSamples(self._metric.labels(*values))
        return child


def tenant_label(tenant_name: str) -> str:
    """The tenant's own name when the operator opted it in, else "other" (bounded cardinality)."""
    return tenant_name if tenant_name in settings.MESH_METRICS_TENANTS else OTHER_TENANT


_requests = Children(REQUESTS)


def unauthenticated_observed(status: int, code: str) -> None:
    """A refusal before any key is known (it has no ledger entry): counted here, not by the ledger."""
    if METRICS_ON:
        _requests(str(status), code, NONE, NONE, NONE).inc()


def dead_workers_forget(directory: str | None = None) -> None:
    """Drop the live gauges of processes that no longer exist (a worker that died or was replaced),
    as `mark_process_dead` would, had uvicorn a hook for it. Counters and histograms keep their
    files: what a dead worker counted still counts."""
    path = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not path.is_dir():
        return
    for file in path.glob("gauge_live*_*.db"):
        pid = int(file.stem.rpartition("_")[2])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's
            pass


class StateCollector(Collector):
    """Scrape-time gauges: figures gathered just before the scrape by `state_figures`."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        figures = self.figures
        for name, help_text in (
            ("mesh_postgres_up", "1 when PostgreSQL answers a query, else 0."),
            ("mesh_redis_up", "1 when Redis answers a PING, else 0."),
        ):
            yield GaugeMetricFamily(name, help_text, value=float(figures[name]))
        if "ledger" in figures:
            ledger = figures["ledger"]
            yield GaugeMetricFamily(
                "mesh_ledger_unflushed_events",
                "Usage events written to the Redis write-ahead stream but not yet flushed to PostgreSQL.",
                value=float(ledger["unflushed_events"]),
            )
            yield GaugeMetricFamily(
                "mesh_ledger_oldest_unflushed_age_seconds",
                "Age of the oldest usage event not yet flushed to PostgreSQL (0 when none waits).",
                value=float(ledger["oldest_unflushed_age_s"]),
            )
        if "celery_queues" in figures:
            depth = GaugeMetricFamily(
                "mesh_celery_queue_depth", "Celery tasks waiting in the broker, by queue.", labels=["queue"]
            )
            for queue, waiting in figures["celery_queues"].items():
                depth.add_metric([queue], float(waiting))
            yield depth


async def _celery_queue_depths(queues: Sequence[str]) -> dict[str, int]:
    """Tasks waiting in each queue of a Redis broker (kombu keeps a queue as a Redis list)."""
    import redis.asyncio as aioredis

    from meshplatform.redis import get_redis

    broker = settings.CELERY_BROKER_URL
    client = get_redis() if broker == settings.REDIS_URL else aioredis.Redis.from_url(broker)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            lengths = await pipe.execute()
    finally:
        if client is not get_redis():
            await client.aclose()
    return {queue: int(length) for queue, length in zip(queues, lengths, strict=True)}


async def state_figures() -> dict[str, Any]:
    """What the scrape-time gauges show; a part whose store is down is left out (its _up says so)."""
    from meshplatform.health import _database_ok, _redis_ok

    database_ok, redis_ok = await asyncio.gather(_database_ok(), _redis_ok())
    figures: dict[str, Any] = {"mesh_postgres_up": database_ok, "mesh_redis_up": redis_ok}
    if redis_ok:
        # Redis went away between the calls, or the broker is unreachable: no figure, not a wrong one.
        with contextlib.suppress(Exception):
            _, figures["ledger"] = await import_string(settings.MESH_READINESS_PROBES["ledger"])()
        if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
            with contextlib.suppress(Exception):
                figures["celery_queues"] = await _celery_queue_depths(settings.MESH_METRICS_CELERY_QUEUES)
    return figures


def _exposition(figures: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(StateCollector(figures))
    return generate_latest(registry)


async def metrics(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: 404 unless MESH_METRICS_TOKEN is set, then only with that bearer token."""
    token = settings.MESH_METRICS_TOKEN
    if not token:
        return error_response(NotFound(f"No endpoint at {request.path}."), request_id_of(request))
    given = request.headers.get("Authorization", "")
    scheme, _, credential = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credential.encode(), token.encode()):
        error = Unauthorized("GET /metrics needs Authorization: Bearer <MESH_METRICS_TOKEN>.")
        # Not error_response: a scraper's refusal is not an API request refused (that counts 401s).
        envelope = orjson.dumps(error.envelope(request_id_of(request)))
        response = HttpResponse(envelope, status=401, content_type="application/json")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    samples_write()  # this worker's pending samples; the others' are at most MESH_METRICS_FLUSH_S old
    body = await asyncio.to_thread(_exposition, await state_figures())
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


dead_workers_forget()
