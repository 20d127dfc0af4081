"""Idempotency-Key on the billing POSTs, through the real HTTP interface: a retry of an answered
request is answered from the first one (no upstream call, billed once), a retry while the first
runs is a 409, a failed first lets the retry run, a reused key with another body is a 422, and
keys never share answers across tenants."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from decimal import Decimal
from typing import Any

import httpx
import meshapi
import orjson
import redis
from django.conf import settings

from jobs.models import Job
from keys.services import CreatedKey
from keys.tokens import token_hash
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.support.waiting import wait_until
from tests.usage.conftest import ledger_events


def redis_name(key: CreatedKey, endpoint: str, idempotency_key: str) -> str:
    """Where routing.idempotency keeps the key (its layout, restated so a change is noticed)."""
    hashed = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"mesh:idem:{token_hash(key.plaintext)}:{endpoint}:{hashed}"


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


def test_a_stream_ran_once_however_it_ended(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    """A stream bills from its first chunk: completed or cut, a retry is told it ran (409, naming
    the first request), never run and billed again."""
    key = str(uuid.uuid4())
    stream = post(acme_http, key, stream=True)
    assert stream.status_code == 200 and "data: [DONE]" in stream.text
    again = post(acme_http, key, stream=True)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "idempotency_key_used"
    assert stream.headers["X-Request-Id"] in again.json()["error"]["message"]

    cut_key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, chunks=5, drop_after_chunks=2)
    cut = post(acme_http, cut_key, stream=True)
    assert cut.status_code == 200 and "data: [DONE]" in cut.text  # the failure is the last chunk
    assert '"finish_reason":"error"' in cut.text.replace(" ", "")
    rerun = post(acme_http, cut_key, stream=True)
    assert rerun.status_code == 409 and rerun.json()["error"]["code"] == "idempotency_key_used"
    assert chat_calls(simulator) == 2
    rows = ledger_events([cut.headers["X-Request-Id"], rerun.headers["X-Request-Id"]])
    assert rows[cut.headers["X-Request-Id"]].cost_usd > 0  # the cut stream billed what it produced
    assert rows[rerun.headers["X-Request-Id"]].cost_usd == 0


def test_a_client_gone_before_the_answer_lets_its_retry_run(
    api_url: str, acme_key: CreatedKey, acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    """The client leaves while the upstream still works (nothing billed): its retry runs, once
    the first has settled (meanwhile a 409 in progress, which the SDK waits out)."""
    key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, delay_s=3)
    auth = {"Authorization": f"Bearer {acme_key.plaintext}"}
    with (
        httpx.Client(base_url=api_url, headers=auth, timeout=0.5) as impatient,
        contextlib.suppress(httpx.TimeoutException),
    ):
        post(impatient, key)
    wait_until(lambda: chat_calls(simulator) == 1, what="the first request upstream")
    retried = wait_until(
        lambda: ((r := post(acme_http, key)).status_code != 409 and r) or None,
        timeout=20,
        what="the retry to run once the first settled",
    )
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert chat_calls(simulator) == 2


def test_a_claim_taken_over_is_left_to_its_new_owner(
    acme_http: httpx.Client, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    """Settling checks the key is still this request's: a first request whose claim lapsed and
    was taken by a retry cannot overwrite (or release) the retry's claim when it ends."""
    key = str(uuid.uuid4())
    simulator.script(model="gpt-4o-mini", times=1, delay_s=2)
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(post(acme_http, key)))
    slow.start()
    wait_until(lambda: chat_calls(simulator) == 1, what="the first request upstream")
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    name = redis_name(acme_key, "chat.completions", key)
    stored = redis_client.get(name)
    assert isinstance(stored, bytes)
    fingerprint = orjson.loads(stored.split(b"\n")[1])["fp"]
    taken = (
        b"req_someone_else\n"
        + orjson.dumps({"state": "pending", "fp": fingerprint, "status": 0, "headers": {}})
        + b"\n"
    )
    redis_client.set(name, taken)
    slow.join()
    assert answers[0].status_code == 200
    assert redis_client.get(name) == taken
    busy = post(acme_http, key)
    assert busy.status_code == 409 and "req_someone_else" in busy.json()["error"]["message"]


def test_an_unreadable_record_is_never_run_again(
    acme_http: httpx.Client, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    redis.Redis.from_url(settings.REDIS_URL).set(
        redis_name(acme_key, "chat.completions", key), b"req_old\nnot json\n"
    )
    answer = post(acme_http, key)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "idempotency_key_used"
    assert chat_calls(simulator) == 0


def test_one_key_on_two_endpoints_is_two_requests(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    key = str(uuid.uuid4())
    assert post(acme_http, key).status_code == 200
    embedded = post(acme_http, key, "/embeddings", model="openai/text-embedding-3-small", input="x")
    assert embedded.status_code == 200 and "Idempotent-Replayed" not in embedded.headers


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


def test_the_sdk_waits_out_a_first_attempt_still_running(
    api_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    """A 409 idempotency_in_progress is retried after its Retry-After: the SDK's call gets the
    first attempt's answer, replayed, and the upstream is asked once."""
    simulator.script(model="gpt-4o-mini", times=1, delay_s=1.5)
    params = meshapi.ChatCompletionParams(**chat_body())
    with meshapi.MeshAPI(base_url=api_url.removesuffix("/v1"), token=acme_key.plaintext) as client:
        first: list[meshapi.ChatCompletion] = []
        call = lambda: first.append(client.chat.completions.create(params, idempotency_key="order-43"))  # noqa: E731
        slow = threading.Thread(target=call)
        slow.start()
        wait_until(lambda: chat_calls(simulator) == 1, what="the first attempt upstream")
        reply = client.chat.completions.create(params, idempotency_key="order-43", max_retries=5)
        slow.join()
    assert reply.id == first[0].id
    assert chat_calls(simulator) == 1
