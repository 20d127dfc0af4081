"""OpenAI's Batch API through the official SDK, run by a real Celery worker through the pipeline."""

from __future__ import annotations

import io
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis
from django.conf import settings
from django.db.models import Sum

from jobs.models import Batch
from keys.models import Tenant
from keys.services import api_key_create
from simulator.server import SimulatorServer
from tests.keys.conftest import key_counter, nano
from tests.support.waiting import wait_until
from usage.models import UsageEvent

FINAL = ("completed", "failed", "expired", "cancelled")


def request_line(custom_id: str, **body: Any) -> bytes:
    payload = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Hi {custom_id}"}],
            **body,
        },
    }
    return orjson.dumps(payload)


MALFORMED = [
    b"{not json",
    b"[1, 2, 3]",
    orjson.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),  # no custom_id
    orjson.dumps({"custom_id": "wrong-url", "method": "POST", "url": "/v1/embeddings", "body": {}}),
    orjson.dumps({"custom_id": "wrong-method", "method": "GET", "url": "/v1/chat/completions", "body": {}}),
    orjson.dumps({"custom_id": "no-body", "method": "POST", "url": "/v1/chat/completions", "body": "hi"}),
]


def upload(client: Any, lines: list[bytes]) -> Any:
    return client.files.create(file=("batch.jsonl", io.BytesIO(b"\n".join(lines) + b"\n")), purpose="batch")


def wait_for_batch(client: Any, batch_id: str, timeout: float = 240) -> Any:
    return wait_until(
        lambda: (b := client.batches.retrieve(batch_id)).status in FINAL and b,
        timeout=timeout,
        what="the batch",
    )


def completed_lines(client: Any, batch_id: str) -> int:
    counts = client.batches.retrieve(batch_id).request_counts
    return int(counts.completed) if counts is not None else 0


def lines_of(client: Any, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [orjson.loads(line) for line in client.files.content(file_id).content.splitlines()]


def test_500_line_batch_with_malformed_lines_and_upstream_faults(
    acme_openai: Any, tenant_acme: Tenant, simulator: SimulatorServer, worker_factory: Any
) -> None:
    lines: list[bytes] = []
    for i in range(500):
        if i % 50 == 7:
            lines.append(MALFORMED[(i // 50) % len(MALFORMED)])
        elif i % 40 == 3:
            lines.append(request_line(f"req-{i}", mock={"status": 500}))  # upstream fault
        elif i % 45 == 5:
            lines.append(request_line(f"req-{i}", messages="not a list"))  # refused by the pipeline: 422
        elif i % 30 == 0:
            lines.append(request_line(f"req-{i}", session_id="own-session"))
        else:
            lines.append(request_line(f"req-{i}", max_tokens=20))
    lines.append(request_line("req-1"))  # a duplicate custom_id: 501 lines
    simulator.script(status=503, times=5)  # and five scripted upstream faults, wherever they land
    uploaded = upload(acme_openai, lines)
    worker_factory()
    started = time.monotonic()
    batch = acme_openai.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert batch.object == "batch" and batch.status == "validating" and batch.id.startswith("batch_")
    assert batch.metadata == {"run": "nightly"} and batch.input_file_id == uploaded.id
    done = wait_for_batch(acme_openai, batch.id)
    elapsed = time.monotonic() - started
    assert done.status == "completed", done
    assert done.request_counts.total == 501
    assert done.completed_at and done.in_progress_at and done.finalizing_at

    output, errors = lines_of(acme_openai, done.output_file_id), lines_of(acme_openai, done.error_file_id)
    assert len(output) + len(errors) == 501
    assert done.request_counts.completed == len(output) and done.request_counts.failed == len(errors)
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in output)
    assert all(line["id"].startswith("batch_req_") for line in output + errors)
    malformed = [line for line in errors if line["response"] is None]
    assert len(malformed) == 11  # ten malformed lines and the duplicate
    assert all(
        line["error"]["code"] == "invalid_request" and "Line" in line["error"]["message"]
        for line in malformed
    )
    assert any("not valid JSON" in line["error"]["message"] for line in malformed)
    assert any("duplicate custom_id" in line["error"]["message"] for line in malformed)
    answered_errors = [line for line in errors if line["response"] is not None]
    assert {line["response"]["status_code"] for line in answered_errors} >= {422, 502}
    assert all("error" in line["response"]["body"] for line in answered_errors)
    faulted = {f"req-{i}" for i in range(500) if i % 40 == 3 and i % 50 != 7}
    assert faulted <= {line["custom_id"] for line in answered_errors}
    output_ids = [line["custom_id"] for line in output]
    assert len(output_ids) == len(set(output_ids))

    # Billing: one usage event per line that became a request, the batch id as session_id
    # unless the line gave one; the ledger's tokens are the output's.
    events = UsageEvent.objects.filter(tenant=tenant_acme)
    wait_until(
        lambda: events.count() == 501 - len(malformed),
        timeout=30,
        what="the batch's usage events",
    )
    assert set(events.values_list("session_id", flat=True)) == {batch.id, "own-session"}
    ok = events.filter(http_status=200)
    assert ok.count() == len(output)
    totals = ok.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    assert totals["p"] == sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)
    assert totals["c"] == sum(line["response"]["body"]["usage"]["completion_tokens"] for line in output)
    request_ids = {line["response"]["request_id"] for line in output + answered_errors}
    assert request_ids == set(events.values_list("request_id", flat=True))
    print(f"\n500-line batch: {501 / elapsed:.1f} lines/s end to end ({elapsed:.1f}s)")


def test_a_line_refused_by_a_cap_lands_in_the_error_file_and_the_batch_goes_on(
    api_url: str, tenant_acme: Tenant, worker_factory: Any
) -> None:
    from openai import OpenAI

    # Each line costs 10 × $0.15/M + 50 × $0.60/M = $0.0000315: four fit under a $0.0001 soft cap.
    key = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal("0.0001"))
    client = OpenAI(base_url=api_url, api_key=key.plaintext, max_retries=0)
    worker_factory(MESH_BATCH_CONCURRENCY_PER_TENANT="1")
    tokens = {"prompt_tokens": 10, "completion_tokens": 50}
    lines = [request_line(f"c{i}", mock=tokens) for i in range(12)]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)
    assert done.status == "completed"
    output, errors = lines_of(client, done.output_file_id), lines_of(client, done.error_file_id)
    assert [line["custom_id"] for line in output] == ["c0", "c1", "c2", "c3"]
    assert [line["custom_id"] for line in errors] == [f"c{i}" for i in range(4, 12)]
    assert {line["response"]["status_code"] for line in errors} == {402}
    assert all(line["response"]["body"]["error"]["code"] == "spend_limit_exceeded" for line in errors)
    events = UsageEvent.objects.filter(api_key_id=key.api_key.pk)
    wait_until(
        lambda: events.count() == 12,
        what="12 events",
    )
    assert events.aggregate(s=Sum("cost_usd"))["s"] == 4 * Decimal("0.0000315")
    client.close()


def test_a_batch_survives_a_killed_worker_without_rerunning_or_rebilling_finished_lines(
    api_url: str, tenant_acme: Tenant, simulator: SimulatorServer, worker_factory: Any
) -> None:
    from openai import OpenAI

    key = api_key_create(tenant=tenant_acme, name="batch")
    client = OpenAI(base_url=api_url, api_key=key.plaintext, max_retries=0)
    lines = [request_line(f"k{i}", max_tokens=20, mock={"delay_s": 0.15}) for i in range(60)]
    file_id = upload(client, lines).id
    first = worker_factory(MESH_BATCH_CONCURRENCY_PER_TENANT="2")
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_until(lambda: completed_lines(client, batch.id) >= 15, timeout=60, what="15 lines")
    first.kill()
    killed_at = completed_lines(client, batch.id)
    assert killed_at < 60

    worker_factory(MESH_BATCH_CONCURRENCY_PER_TENANT="2")
    done = wait_for_batch(client, batch.id)
    assert (
        done.status == "completed" and done.request_counts.completed == 60 and done.request_counts.failed == 0
    )
    output = lines_of(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"k{i}" for i in range(60))
    assert Batch.objects.get(id=batch.id).runs >= 2
    upstream_calls = [r for r in simulator.requests() if r["path"].endswith("/chat/completions")]
    assert 60 <= len(upstream_calls) <= 62  # only the lines in flight at the kill ran twice
    events = UsageEvent.objects.filter(api_key_id=key.api_key.pk)
    wait_until(lambda: events.count() >= 60, what="events")
    assert events.count() == 60 and events.filter(session_id=batch.id).count() == 60
    spent = events.aggregate(s=Sum("cost_usd"))["s"]
    assert key_counter(redis.Redis.from_url(settings.REDIS_URL), tenant_acme, key.api_key.pk) == nano(spent)
    client.close()


def test_cancel_a_batch_keeps_what_finished(api_url: str, acme_openai: Any, worker_factory: Any) -> None:
    worker_factory(MESH_BATCH_CONCURRENCY_PER_TENANT="1")
    lines = [request_line(f"x{i}", mock={"delay_s": 0.3}) for i in range(30)]
    batch = acme_openai.batches.create(
        input_file_id=upload(acme_openai, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_until(lambda: completed_lines(acme_openai, batch.id) >= 2, timeout=30, what="2")
    with pytest.raises(openai.ConflictError):  # an unfinished batch's input file cannot be deleted
        acme_openai.files.delete(batch.input_file_id)
    cancelling = acme_openai.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_for_batch(acme_openai, batch.id)
    assert done.status == "cancelled" and done.cancelled_at and done.cancelling_at
    output = lines_of(acme_openai, done.output_file_id)
    assert 2 <= len(output) == done.request_counts.completed < 30
    assert acme_openai.batches.cancel(batch.id).status == "cancelled"  # cancelling again: no change


def test_batch_create_validation_and_a_file_without_requests(
    acme_openai: Any, acme_http: httpx.Client, worker_factory: Any
) -> None:
    good = upload(acme_openai, [request_line("a")]).id
    for body, param in (
        ({"input_file_id": good, "endpoint": "/v1/embeddings", "completion_window": "24h"}, "endpoint"),
        (
            {"input_file_id": good, "endpoint": "/v1/chat/completions", "completion_window": "1h"},
            "completion_window",
        ),
        ({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, "input_file_id"),
        (
            {
                "input_file_id": good,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": [1],
            },
            "metadata",
        ),
    ):
        refused = acme_http.post("/batches", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["param"] == param
    unknown = {"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    assert acme_http.post("/batches", json=unknown).status_code == 404
    assert (
        acme_http.post("/batches", content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 422
    )
    assert Batch.objects.count() == 0

    worker_factory()
    blank = acme_openai.files.create(file=("blank.jsonl", io.BytesIO(b"\n \n\n")), purpose="batch")
    batch = acme_openai.batches.create(
        input_file_id=blank.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = wait_for_batch(acme_openai, batch.id)
    assert failed.status == "failed" and failed.failed_at
    assert failed.errors.data[0].code == "invalid_file"
    assert "no request line" in failed.errors.data[0].message

    ran = acme_openai.batches.create(
        input_file_id=good, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert wait_for_batch(acme_openai, ran.id).status == "completed"
    with pytest.raises(openai.ConflictError):
        acme_openai.batches.cancel(ran.id)
    assert acme_openai.files.delete(good).deleted  # a finished batch no longer holds its input


def test_another_tenants_batches_are_404(
    acme_openai: Any, globex_key: Any, api_url: str, acme_http: httpx.Client, worker_factory: Any
) -> None:
    from openai import OpenAI

    file_id = upload(acme_openai, [request_line("a")]).id
    batch = acme_openai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    globex = OpenAI(base_url=api_url, api_key=globex_key.plaintext, max_retries=0)
    assert list(globex.batches.list()) == []
    with pytest.raises(openai.NotFoundError):
        globex.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        globex.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):  # nor run a batch over another tenant's file
        globex.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert [b.id for b in acme_openai.batches.list()] == [batch.id]
    globex.close()


def test_batch_list_pages(acme_openai: Any, gateway: Any) -> None:
    file_id = upload(acme_openai, [request_line("a")]).id
    ids = [
        acme_openai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    page = acme_openai.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id for b in page.get_next_page().data] == ids[:1]
    assert [b.id for b in acme_openai.batches.list(limit=2)] == ids[::-1]  # auto-paging


def test_a_tenants_lines_run_at_most_the_configured_number_at_once_across_workers(
    acme_openai: Any, worker_factory: Any
) -> None:
    """Two workers run two batches of one tenant at the same time, MESH_BATCH_CONCURRENCY_PER_TENANT=2:
    12 lines of 0.5 s need at least 6 rounds (3 s); two per worker at once would take 1.5 s."""
    for _ in range(2):
        worker_factory(MESH_BATCH_CONCURRENCY_PER_TENANT="2")
    lines = [request_line(f"p{i}", mock={"delay_s": 0.5}) for i in range(6)]
    file_id = upload(acme_openai, lines).id
    ids = [
        acme_openai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(2)
    ]
    for batch_id in ids:
        assert wait_for_batch(acme_openai, batch_id).status == "completed"
    runs = list(Batch.objects.filter(id__in=ids))
    assert all(b.completed == 6 for b in runs)
    started = max(b.in_progress_at for b in runs if b.in_progress_at)
    first_done = min(b.completed_at for b in runs if b.completed_at)
    assert started < first_done  # both ran at the same time, one per worker
    span = max(b.completed_at for b in runs if b.completed_at) - min(
        b.in_progress_at for b in runs if b.in_progress_at
    )
    assert span.total_seconds() >= 6 * 0.5
