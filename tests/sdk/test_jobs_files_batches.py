"""Async jobs, Files and Batches through the SDK, against the live gateway and a real Celery worker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import meshapi
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import gateway_env
from tests.support.celery_worker import CeleryWorker
from tests.support.gateway import GatewayServer


@pytest.fixture
def worker(gateway: GatewayServer, simulator: SimulatorServer) -> Iterator[CeleryWorker]:
    celery = CeleryWorker(env=gateway_env(simulator), beat=True).start()
    yield celery
    celery.kill()


def hello(**fields: Any) -> meshapi.ChatCompletionParams:
    return meshapi.ChatCompletionParams(
        model="openai/gpt-4o-mini", messages=[meshapi.ChatMessage(role="user", content="Say hello")], **fields
    )


def test_job_create_wait_list(mesh: meshapi.MeshAPI, worker: CeleryWorker) -> None:
    job = mesh.jobs.create(hello(session_id="nightly"))
    assert (job.object, job.status, job.session_id) == ("chat.completion.job", "queued", "nightly")
    done = mesh.jobs.wait(job.id, timeout=60)
    assert done.status == "succeeded" and done.done
    assert done.completion().choices[0].message.content
    assert done.result is not None and done.result.usage.total_tokens > 0
    assert mesh.jobs.get(job.id).status == "succeeded"
    page = mesh.jobs.list(limit=10, status="succeeded")
    assert [j.id for j in page.data] == [job.id] and page.last_id == job.id
    with pytest.raises(meshapi.ConflictError):
        mesh.jobs.cancel(job.id)  # a finished job cannot be cancelled


def test_a_failed_job_raises_its_error_class(mesh: meshapi.MeshAPI, worker: CeleryWorker) -> None:
    job = mesh.jobs.create(hello(mock={"status": 500}))
    done = mesh.jobs.wait(job.id, timeout=60)
    assert done.status == "failed" and done.error is not None
    with pytest.raises(meshapi.UpstreamError) as caught:
        done.completion()
    assert caught.value.status_code == 502 and caught.value.code == "upstream_error"


def test_cancel_a_queued_job(mesh: meshapi.MeshAPI) -> None:
    """No worker runs: the job stays queued until cancelled."""
    job = mesh.jobs.create(hello())
    cancelled = mesh.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert mesh.jobs.wait(job.id, timeout=5).status == "cancelled"


def test_wait_gives_up_after_its_timeout(mesh: meshapi.MeshAPI) -> None:
    job = mesh.jobs.create(hello())  # no worker: never finishes
    with pytest.raises(meshapi.JobWaitTimeout):
        mesh.jobs.wait(job.id, timeout=1)
    mesh.jobs.cancel(job.id)


def test_jobs_are_the_tenants_own(mesh: meshapi.MeshAPI, mesh_url: str, globex_key: CreatedKey) -> None:
    job = mesh.jobs.create(hello())
    with meshapi.MeshAPI(base_url=mesh_url, token=globex_key.plaintext) as globex:
        with pytest.raises(meshapi.NotFoundError):
            globex.jobs.get(job.id)
        with pytest.raises(meshapi.NotFoundError):
            globex.jobs.cancel(job.id)
        assert globex.jobs.list().data == []
    mesh.jobs.cancel(job.id)


def test_async_jobs_client(mesh_url: str, acme_key: CreatedKey, worker: CeleryWorker) -> None:
    async def run() -> meshapi.Job:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
            job = await mesh.jobs.create(hello())
            return await mesh.jobs.wait(job, timeout=60)  # a Job works as well as its id

    assert asyncio.run(run()).completion().choices[0].message.content


def batch_lines(count: int) -> bytes:
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Count to {i}"}],
            },
        }
        for i in range(count)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def test_files_and_batches(mesh: meshapi.MeshAPI, worker: CeleryWorker) -> None:
    upload = mesh.files.create(file=("questions.jsonl", batch_lines(3)), purpose="batch")
    assert (upload.filename, upload.purpose, upload.bytes) == (
        "questions.jsonl",
        "batch",
        len(batch_lines(3)),
    )
    assert mesh.files.retrieve(upload.id).id == upload.id
    assert mesh.files.content(upload.id) == batch_lines(3)
    assert upload.id in [f.id for f in mesh.files.list(purpose="batch").data]

    batch = mesh.batches.create(input_file_id=upload.id, metadata={"job": "nightly"})
    assert batch.metadata == {"job": "nightly"} and batch.endpoint == "/v1/chat/completions"
    deadline = time.monotonic() + 60
    while not batch.done and time.monotonic() < deadline:
        time.sleep(0.5)
        batch = mesh.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None and batch.request_counts.completed == 3
    assert batch.output_file_id is not None
    output = [json.loads(line) for line in mesh.files.content(batch.output_file_id).splitlines()]
    assert sorted(line["custom_id"] for line in output) == ["q0", "q1", "q2"]
    assert batch.id in [b.id for b in mesh.batches.list().data]

    deleted = mesh.files.delete(upload.id)
    assert deleted.deleted and deleted.id == upload.id
    with pytest.raises(meshapi.NotFoundError):
        mesh.files.retrieve(upload.id)


def test_cancel_a_batch(mesh: meshapi.MeshAPI) -> None:
    upload = mesh.files.create(file=batch_lines(2))
    batch = mesh.batches.create(input_file_id=upload.id)
    cancelled = mesh.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")


def test_files_are_the_tenants_own(mesh: meshapi.MeshAPI, mesh_url: str, globex_key: CreatedKey) -> None:
    upload = mesh.files.create(file=batch_lines(1))
    with meshapi.MeshAPI(base_url=mesh_url, token=globex_key.plaintext) as globex:
        with pytest.raises(meshapi.NotFoundError):
            globex.files.retrieve(upload.id)
        with pytest.raises(meshapi.NotFoundError):
            globex.files.content(upload.id)
        assert upload.id not in [f.id for f in globex.files.list().data]
