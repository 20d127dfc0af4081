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


def test_what_a_synchronous_request_would_be_refused_is_refused_at_submission(
    api_url: str, acme_http: httpx.Client, tenant_acme: Any
) -> None:
    """No worker runs in this test: every refusal comes from the submission itself."""
    from decimal import Decimal

    from keys.services import api_key_create

    assert httpx.post(f"{api_url}/chat/completions", json=chat_body(async_mode=True)).status_code == 401
    assert submit(acme_http, model="openai/no-such-model").status_code == 404
    missing = submit(acme_http, template="no-such-template")
    assert missing.status_code == 404, missing.text
    assert submit(acme_http, model="anthropic/claude-3-5-haiku-latest").status_code == 503
    assert submit(acme_http, stream=True).status_code == 422
    for url in (
        "ftp://x.example/hook",
        "http://example.com/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/",
    ):
        refused = submit(acme_http, webhook_url=url)
        assert refused.status_code == 422, (url, refused.text)
        assert refused.json()["error"]["param"] == "webhook_url"

    limited = api_key_create(tenant=tenant_acme, name="rpm1", rpm=1)
    headers = {"Authorization": f"Bearer {limited.plaintext}"}
    first = httpx.post(f"{api_url}/chat/completions", json=chat_body(async_mode=True), headers=headers)
    assert first.status_code == 202
    second = httpx.post(f"{api_url}/chat/completions", json=chat_body(async_mode=True), headers=headers)
    assert second.status_code == 429 and second.headers["Retry-After"]

    hard = api_key_create(tenant=tenant_acme, name="hard", spend_cap_usd=Decimal("0.001"), hard_cap=True)
    headers = {"Authorization": f"Bearer {hard.plaintext}"}
    worst = httpx.post(f"{api_url}/chat/completions", json=chat_body(async_mode=True), headers=headers)
    assert worst.status_code == 402  # no max_tokens: the model's whole output allowance is held
    assert "could cost up to" in worst.json()["error"]["message"]
    fits = chat_body(async_mode=True, max_tokens=100)
    assert httpx.post(f"{api_url}/chat/completions", json=fits, headers=headers).status_code == 202

    from jobs.models import Job

    assert Job.objects.filter(tenant=tenant_acme).count() == 2  # only the admitted ones


def test_a_failed_upstream_fails_the_job_with_the_error_envelope(
    acme_http: httpx.Client, celery_worker: CeleryWorker
) -> None:
    fault = {"status": 400, "error_message": "bad things"}
    synchronous = acme_http.post("/chat/completions", json=chat_body(mock=fault))
    job = submit(acme_http, mock=fault).json()
    done = wait_for_job(acme_http, job["id"])
    assert done["status"] == "failed"
    assert done["result"] is None
    assert done["error"]["status_code"] == synchronous.status_code  # what the same request answers
    assert done["error"]["code"] == synchronous.json()["error"]["code"]
    assert done["error"]["provider_error"]["status"] == 400
    event = wait_until(lambda: UsageEvent.objects.filter(request_id=job["request_id"]).first(), what="event")
    assert event.http_status == synchronous.status_code


def test_cancel_a_queued_job_then_a_finished_one_is_409(
    gateway: Any, acme_http: httpx.Client, worker_factory: Any
) -> None:
    job = submit(acme_http).json()  # no worker yet: it stays queued
    cancelled = acme_http.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    worker_factory()
    event = wait_until(
        lambda: UsageEvent.objects.filter(request_id=job["request_id"]).first(),
        what="the cancellation's event",
    )
    assert event.cancelled and event.cost_usd == 0
    assert acme_http.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"

    ran = submit(acme_http).json()
    assert wait_for_job(acme_http, ran["id"])["status"] == "succeeded"
    again = acme_http.post(f"/jobs/{ran['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_cancel_a_running_job_stops_it(acme_http: httpx.Client, celery_worker: CeleryWorker) -> None:
    job = submit(acme_http, mock={"delay_s": 20}).json()
    wait_until(lambda: acme_http.get(f"/jobs/{job['id']}").json()["status"] == "running", what="running")
    assert acme_http.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    event = wait_until(
        lambda: UsageEvent.objects.filter(request_id=job["request_id"]).first(), timeout=15, what="event"
    )
    assert event.cancelled
    assert acme_http.get(f"/jobs/{job['id']}").json()["result"] is None


def test_job_list_filters_and_pages(gateway: Any, acme_http: httpx.Client, globex_http: httpx.Client) -> None:
    ids = [submit(acme_http, session_id=f"s{i % 2}").json()["id"] for i in range(5)]
    submit(globex_http)
    page = acme_http.get("/jobs", params={"limit": 2}).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    rest = acme_http.get("/jobs", params={"limit": 10, "after": page["last_id"]}).json()
    assert [j["id"] for j in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    s0 = acme_http.get("/jobs", params={"session_id": "s0"}).json()["data"]
    assert sorted(j["id"] for j in s0) == sorted(ids[0::2])
    assert len(acme_http.get("/jobs", params={"status": "queued"}).json()["data"]) == 5
    assert acme_http.get("/jobs", params={"status": "succeeded"}).json()["data"] == []
    assert acme_http.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert acme_http.get("/jobs", params={"limit": 0}).status_code == 422
    assert acme_http.get("/jobs", params={"model": "openai/gpt-4o-mini"}).json()["data"][0]["id"] == ids[-1]


def test_another_tenants_job_is_404(gateway: Any, acme_http: httpx.Client, globex_http: httpx.Client) -> None:
    job = submit(acme_http).json()
    assert globex_http.get(f"/jobs/{job['id']}").status_code == 404
    assert globex_http.post(f"/jobs/{job['id']}/cancel").status_code == 404
    assert globex_http.get("/jobs").json()["data"] == []
    assert acme_http.get(f"/jobs/{job['id']}").status_code == 200
    assert globex_http.get(f"/jobs/{job['id']}").json()["error"]["code"] == "not_found"


def test_results_expire_after_the_retention(
    gateway: Any, acme_http: httpx.Client, worker_factory: Any
) -> None:
    worker_factory(MESH_JOB_RETENTION_S="1")
    job = submit(acme_http).json()
    assert wait_for_job(acme_http, job["id"])["status"] == "succeeded"
    expired = wait_until(
        lambda: (j := acme_http.get(f"/jobs/{job['id']}").json())["status"] == "expired" and j,
        timeout=15,
        what="the job to expire",
    )
    assert expired["result"] is None and expired["error"] is None


def test_a_job_keeps_the_longest_session_id_a_request_may_carry(acme_http: httpx.Client) -> None:
    """A request's session_id may have 256 characters; the job stores it whole (was a 500)."""
    session_id = "s" * 256
    response = submit(acme_http, session_id=session_id)
    assert response.status_code == 202, response.text
    assert response.json()["session_id"] == session_id
    assert acme_http.get(f"/jobs/{response.json()['id']}").json()["session_id"] == session_id
