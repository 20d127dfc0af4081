"""Idempotency-Key on the billing POSTs, through the real HTTP interface: a retry of an answered
request is answered from the first one (no upstream call, billed once), a retry while the first
runs is a 409, a failed first lets the retry run, a reused key with another body is a 422, and
keys never share answers across tenants."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import httpx
import meshapi

from jobs.models import Job
from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.support.waiting import wait_until
from tests.usage.conftest import ledger_events


def chat_calls(simulator: SimulatorServer) -> int:
    return sum(1 for r in simulator.requests() if r["path"].endswith("/chat/completions"))


def post(client: httpx.Client, key: str, path: str = "/chat/completions", **body: Any) -> httpx.Response:
    return client.post(path, json=chat_body(**body) if path == "/chat/completions" else body,
                       headers={"Idempotency-Key": key})  # fmt: skip


def test_a_retry_gets_the_first_answer_without_a_second_call_or_charge(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    first = post(acme_http, key, session_id="retry-me")
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = post(acme_http, key, session_id="retry-me")
    assert again.status_code == 200, again.text
    assert again.content == first.content  # the same completion id, text and usage
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["X-Mesh-Original-Request-Id"] == first.headers["X-Request-Id"]
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert chat_calls(simulator) == 1

    rows = ledger_events([first.headers["X-Request-Id"], again.headers["X-Request-Id"]])
    billed, replayed = rows[first.headers["X-Request-Id"]], rows[again.headers["X-Request-Id"]]
    assert billed.cost_usd > 0 and billed.error_code == ""
    assert replayed.cost_usd == Decimal(0) and replayed.prompt_tokens == replayed.completion_tokens == 0
    assert replayed.error_code == "idempotent_replay" and replayed.http_status == 200


def test_the_same_key_with_another_body_is_a_422_and_runs_nothing(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    assert post(acme_http, key).status_code == 200
    other = post(acme_http, key, messages=[{"role": "user", "content": "Something else"}])
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == "Idempotency-Key"
    assert chat_calls(simulator) == 1
    assert ledger_events([other.headers["X-Request-Id"]])[other.headers["X-Request-Id"]].http_status == 422


def test_a_retry_while_the_first_still_runs_is_a_409_with_retry_after(
    acme_http: httpx.Client, api_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, delay_s=2)
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(post(acme_http, key)))
    slow.start()
    wait_until(lambda: chat_calls(simulator) == 1, what="the first request upstream")
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {acme_key.plaintext}"}) as other:
        busy = post(other, key)
    slow.join()
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "idempotency_in_progress"
    assert busy.headers["Retry-After"] == "1"
    assert answers[0].status_code == 200
    assert post(acme_http, key).headers["Idempotent-Replayed"] == "true"
    assert chat_calls(simulator) == 1


def test_a_failed_first_request_lets_the_retry_run(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, status=400)  # not retried by the gateway itself
    failed = post(acme_http, key)
    assert failed.status_code == 400, failed.text
    retried = post(acme_http, key)
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert post(acme_http, key).headers["Idempotent-Replayed"] == "true"


def test_a_completed_stream_is_not_run_twice_and_a_cut_one_is(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    stream = post(acme_http, key, stream=True)
    assert stream.status_code == 200 and "data: [DONE]" in stream.text
    again = post(acme_http, key, stream=True)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "idempotency_key_used"
    assert stream.headers["X-Request-Id"] in again.json()["error"]["message"]
    assert chat_calls(simulator) == 1

    cut_key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, chunks=5, drop_after_chunks=2)
    cut = post(acme_http, cut_key, stream=True)
    assert cut.status_code == 200 and "data: [DONE]" in cut.text  # the failure is the last chunk
    assert '"finish_reason":"error"' in cut.text.replace(" ", "")
    rerun = post(acme_http, cut_key, stream=True)
    assert rerun.status_code == 200 and "Idempotent-Replayed" not in rerun.headers
    assert chat_calls(simulator) == 3


def test_an_async_job_submitted_twice_is_one_job(acme_http: httpx.Client, tenant_acme: Any) -> None:
    key = str(uuid.uuid4())
    first = post(acme_http, key, async_mode=True)
    again = post(acme_http, key, async_mode=True)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert Job.objects.filter(tenant=tenant_acme).count() == 1


def test_embeddings_are_replayed_too(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    key = str(uuid.uuid4())
    body = {"model": "openai/text-embedding-3-small", "input": ["alpha", "beta"]}
    first = post(acme_http, key, "/embeddings", **body)
    again = post(acme_http, key, "/embeddings", **body)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert sum(1 for r in simulator.requests() if r["path"].endswith("/embeddings")) == 1


def test_two_tenants_never_share_an_answer(
    acme_http: httpx.Client, api_url: str, globex_key: CreatedKey, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    acme = post(acme_http, key)
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}
    ) as globex:
        theirs = post(globex, key)
    assert acme.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != acme.json()["id"]
    assert chat_calls(simulator) == 2


def test_bad_keys_are_a_422_before_any_call(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    for bad in ("", "has space", "x" * 256, "caf\u00e9"):
        answer = acme_http.post(
            "/chat/completions", json=chat_body(), headers=[(b"Idempotency-Key", bad.encode())]
        )
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["param"] == "Idempotency-Key"
    assert chat_calls(simulator) == 0


def test_the_sdk_retry_key_is_honoured(
    api_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    """meshapi sends one Idempotency-Key per call (the same on its retries): a call repeated with
    the same key is answered once."""
    params = meshapi.ChatCompletionParams(
        model="openai/gpt-4o-mini", messages=[meshapi.ChatMessage(role="user", content="Once, please")]
    )
    with meshapi.MeshAPI(base_url=api_url.removesuffix("/v1"), token=acme_key.plaintext) as client:
        first = client.chat.completions.create(params, idempotency_key="order-42")
        again = client.chat.completions.create(params, idempotency_key="order-42")
    assert again.id == first.id and again.choices[0].message.content == first.choices[0].message.content
    assert chat_calls(simulator) == 1
