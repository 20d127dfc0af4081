"""Fixtures of the jobs tests: a real Celery worker (with beat) on the test Redis broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.celery_worker import CeleryWorker
from tests.support.gateway import GatewayServer
from tests.support.waiting import wait_until

# Short leases and sweeps so a killed worker's job is taken over within seconds.
WORKER_ENV = {
    "MESH_JOB_LEASE_S": "2",
    "MESH_JOBS_SWEEP_INTERVAL_S": "1",
    "MESH_WEBHOOK_BACKOFF_S": "0.2",
    "MESH_WEBHOOK_MAX_ATTEMPTS": "4",
    "MESH_CELERY_VISIBILITY_TIMEOUT_S": "5",
}


@pytest.fixture
def worker_factory(
    gateway: GatewayServer, simulator: SimulatorServer
) -> Iterator[Callable[..., CeleryWorker]]:
    """Starts workers on demand (each test gets fresh ones: every test flushes the broker's Redis)."""
    started: list[CeleryWorker] = []

    def start(**overrides: str) -> CeleryWorker:
        worker = CeleryWorker(env=gateway_env(simulator, **WORKER_ENV, **overrides), beat=True).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def celery_worker(worker_factory: Callable[..., CeleryWorker]) -> CeleryWorker:
    return worker_factory()


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until the job is final."""

    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled", "expired") else None

    return wait_until(final, timeout=timeout, what=f"job {job_id} to finish")


@pytest.fixture
def globex_http(api_url: str, globex_key: CreatedKey) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}, timeout=30
    ) as client:
        yield client


class WebhookReceiver:
    """An HTTP server on loopback that records each delivery and answers from a script of statuses."""

    def __init__(self, statuses: list[int]) -> None:
        import http.server
        import threading

        self.statuses = list(statuses)
        self.deliveries: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append({"headers": dict(self.headers), "body": body, "path": self.path})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mesh"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[[list[int]], WebhookReceiver]]:
    receivers: list[WebhookReceiver] = []

    def start(statuses: list[int]) -> WebhookReceiver:
        receiver = WebhookReceiver(statuses)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.close()
