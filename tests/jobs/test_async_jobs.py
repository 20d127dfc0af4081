"""async_mode: 202 + a job after the synchronous checks, a Celery worker runs it through the
pipeline, GET /v1/jobs/{id} shows the result; one usage event, billed once."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import chat_body
from tests.jobs.conftest import wait_for_job
from tests.support.celery_worker import CeleryWorker
from tests.support.waiting import wait_until
from usage.models import UsageEvent


def submit(client: httpx.Client, **overrides: Any) -> httpx.Response:
    return client.post("/chat/completions", json=chat_body(async_mode=True, **overrides))


def test_async_job_runs_in_the_worker_and_stores_the_completion(
    acme_http: httpx.Client, celery_worker: CeleryWorker
) -> None:
    response = submit(acme_http, session_id="nightly")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["object"] == "chat.completion.job"
    assert job["status"] == "queued"
    assert job["id"].startswith("job_")
    assert job["model"] == "openai/gpt-4o-mini"
    assert job["session_id"] == "nightly"
    assert isinstance(job["created"], int)
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"

    done = wait_for_job(acme_http, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["object"] == "chat.completion"
    assert done["result"]["model"] == "openai/gpt-4o-mini"
    assert done["result"]["choices"][0]["message"]["content"]
    assert done["error"] is None
    assert done["started_at"] is not None and done["completed_at"] >= done["started_at"]
    assert done["expires_at"] > done["completed_at"]

    event = wait_until(
        lambda: UsageEvent.objects.filter(request_id=job["request_id"]).first(), what="the job's usage event"
    )
    assert event.session_id == "nightly"
    assert event.http_status == 200
    assert event.completion_tokens == done["result"]["usage"]["completion_tokens"]
    assert UsageEvent.objects.filter(tenant__name="acme").count() == 1
