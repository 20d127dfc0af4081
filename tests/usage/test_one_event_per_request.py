"""Every authenticated request leaves exactly one ledger event, whatever its outcome."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create
from tests.conftest import chat_body
from tests.usage.conftest import catalog_cost, ledger_events, wait_until
from usage.models import UsageEvent


def sse_chunks(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_success_is_one_event_with_tokens_cost_and_session(
    acme_http: httpx.Client, acme_key: CreatedKey
) -> None:
    response = acme_http.post(
        "/chat/completions", json=chat_body(session_id="checkout-42", mock={"cached_tokens": 3})
    )
    assert response.status_code == 200
    usage = response.json()["usage"]
    request_id = response.headers["X-Request-Id"]

    event = ledger_events([request_id])[request_id]

    assert (event.tenant_id, event.api_key_id) == (acme_key.api_key.tenant_id, acme_key.api_key.pk)
    assert event.session_id == "checkout-42"
    assert (event.model_requested, event.model_served, event.provider) == (
        "openai/gpt-4o-mini", "openai/gpt-4o-mini", "openai",
    )  # fmt: skip
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens) == (
        usage["prompt_tokens"], usage["completion_tokens"], 3,
    )  # fmt: skip
    assert event.cost_usd == catalog_cost(
        "openai/gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"], cached=3
    )
    assert event.cost_usd > 0 and not event.tokens_estimated
    assert (event.http_status, event.error_code, event.streamed, event.cancelled) == (200, "", False, False)
    assert event.latency_ms is not None and event.latency_ms >= 0
    assert [a["status"] for a in event.attempts] == [200]
    assert UsageEvent.objects.filter(tenant_id=acme_key.api_key.tenant_id).count() == 1


def test_stream_to_the_end_is_one_event_with_the_upstream_usage(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(stream=True, mock={"chunks": 7}))
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    request_id = response.headers["X-Request-Id"]

    event = ledger_events([request_id])[request_id]

    assert event.streamed and not event.cancelled and not event.tokens_estimated
    assert (event.http_status, event.error_code) == (200, "")
    assert event.completion_tokens == 7 and event.prompt_tokens > 0
    assert event.cost_usd == catalog_cost("openai/gpt-4o-mini", event.prompt_tokens, 7)
    assert event.ttft_ms is not None and event.latency_ms is not None and event.ttft_ms <= event.latency_ms


def test_client_disconnect_mid_stream_bills_what_the_upstream_produced(
    api_url: str, acme_key: CreatedKey
) -> None:
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    body = chat_body(stream=True, mock={"chunks": 50, "chunk_delay_ms": 50})
    read = 0
    with (
        httpx.Client(base_url=api_url, headers=headers, timeout=30) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        request_id = response.headers["X-Request-Id"]
        for line in response.iter_lines():
            if line.startswith("data: {") and orjson.loads(line[6:])["choices"][0]["delta"].get("content"):
                read += 1
            if read == 4:
                break  # leaving the block closes the connection mid-stream

    event = ledger_events([request_id])[request_id]

    assert event.cancelled and event.streamed
    assert (event.http_status, event.error_code) == (499, "client_disconnected")
    # No usage chunk ever came: billed for the deltas the upstream had produced, estimated.
    assert event.tokens_estimated
    assert read <= event.completion_tokens < 50
    assert event.prompt_tokens > 0
    assert event.cost_usd == catalog_cost("openai/gpt-4o-mini", event.prompt_tokens, event.completion_tokens)


def test_upstream_failure_mid_stream_is_one_error_event_billed_for_the_chunks_sent(
    acme_http: httpx.Client,
) -> None:
    # Chunks paced as real upstreams send them: bytes that arrive in the same read as the connection
    # reset are discarded by aiohttp's StreamReader (it raises before returning its buffer).
    body = chat_body(stream=True, mock={"drop_after_chunks": 3, "chunk_delay_ms": 30})
    response = acme_http.post("/chat/completions", json=body)
    assert response.status_code == 200  # the headers were already sent; the error travels in-stream
    chunks = sse_chunks(response.text)
    assert chunks[-1]["error"]["code"] == "upstream_error"  # type: ignore[index]
    request_id = response.headers["X-Request-Id"]

    event = ledger_events([request_id])[request_id]

    assert (event.http_status, event.error_code, event.streamed, event.cancelled) == (
        502, "upstream_error", True, False,
    )  # fmt: skip
    assert event.tokens_estimated and event.completion_tokens == 3
    assert event.cost_usd == catalog_cost("openai/gpt-4o-mini", event.prompt_tokens, 3)


def test_upstream_5xx_is_one_event_listing_every_fallback_attempt(acme_http: httpx.Client) -> None:
    response = acme_http.post(
        "/chat/completions",
        json=chat_body(models=["openai/gpt-4o"], mock={"status": 500}, session_id="s-fail"),
    )
    assert response.status_code == 502
    request_id = response.headers["X-Request-Id"]

    event = ledger_events([request_id])[request_id]

    assert (event.http_status, event.error_code, event.session_id) == (502, "upstream_error", "s-fail")
    assert [(a["model"], a["status"]) for a in event.attempts] == [
        ("openai/gpt-4o-mini", 500), ("openai/gpt-4o", 500),
    ]  # fmt: skip
    assert event.cost_usd == 0 and event.prompt_tokens == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (chat_body(model="openai/no-such-model"), 404, "model_not_found"),
        (chat_body(messages=[]), 422, "validation_error"),
        (chat_body(async_mode=True, stream=True), 422, "validation_error"),
    ],
    ids=["unknown-model", "empty-messages", "async-mode-with-stream"],
)
def test_client_errors_after_authentication_are_one_event_each(
    acme_http: httpx.Client, acme_key: CreatedKey, body: dict[str, object], status: int, code: str
) -> None:
    response = acme_http.post("/chat/completions", json=body)
    assert response.status_code == status and response.json()["error"]["code"] == code
    request_id = response.headers["X-Request-Id"]

    event = ledger_events([request_id])[request_id]

    assert (event.http_status, event.error_code, event.cost_usd) == (status, code, Decimal(0))
    assert event.api_key_id == acme_key.api_key.pk


def test_spend_cap_and_rate_limit_refusals_are_one_event_each(api_url: str, tenant_acme: Tenant) -> None:
    capped = api_key_create(tenant=tenant_acme, name="capped", spend_cap_usd=Decimal(0))
    limited = api_key_create(tenant=tenant_acme, name="limited", rpm=1)
    ids: dict[str, list[str]] = {"capped": [], "limited": []}
    for name, key, tries in (("capped", capped, 1), ("limited", limited, 2)):
        with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key.plaintext}"}) as client:
            for _ in range(tries):
                ids[name].append(client.post("/chat/completions", json=chat_body()).headers["X-Request-Id"])

    events = ledger_events(ids["capped"] + ids["limited"])

    assert (events[ids["capped"][0]].http_status, events[ids["capped"][0]].error_code) == (
        402, "spend_limit_exceeded",
    )  # fmt: skip
    assert [(events[i].http_status, events[i].error_code) for i in ids["limited"]] == [
        (200, ""), (429, "rate_limit_exceeded"),
    ]  # fmt: skip


def test_unauthenticated_requests_leave_no_event(api_url: str, acme_http: httpx.Client) -> None:
    refused = httpx.post(
        f"{api_url}/chat/completions", json=chat_body(), headers={"Authorization": "Bearer x"}
    )
    assert refused.status_code == 401
    marker = acme_http.post("/chat/completions", json=chat_body())  # lands after, through the same flusher

    ledger_events([marker.headers["X-Request-Id"]])

    assert not UsageEvent.objects.filter(request_id=refused.headers["X-Request-Id"]).exists()
    assert UsageEvent.objects.count() == 1


def test_a_request_retried_by_the_client_is_two_events_both_billed(acme_http: httpx.Client) -> None:
    body = chat_body(session_id="retry-me")
    first = acme_http.post("/chat/completions", json=body)
    second = acme_http.post("/chat/completions", json=body)
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert ids[0] != ids[1]

    events = ledger_events(ids)

    assert sorted(events) == sorted(ids)
    assert all(e.cost_usd > 0 for e in events.values())
    assert UsageEvent.objects.filter(session_id="retry-me").count() == 2


def test_every_outcome_is_recorded_once_in_the_write_ahead_stream(
    acme_http: httpx.Client, api_url: str, acme_key: CreatedKey, ledger_flusher: object
) -> None:
    """The unique request_id would hide a double write in the table; the stream shows it."""
    from tests.usage.conftest import stream_events

    with ledger_flusher.paused():  # type: ignore[attr-defined]
        ids = [
            acme_http.post("/chat/completions", json=chat_body()).headers["X-Request-Id"],
            acme_http.post("/chat/completions", json=chat_body(stream=True)).headers["X-Request-Id"],
            acme_http.post(
                "/chat/completions", json=chat_body(stream=True, mock={"drop_after_chunks": 2})
            ).headers["X-Request-Id"],
            acme_http.post("/chat/completions", json=chat_body(mock={"status": 400})).headers["X-Request-Id"],
            acme_http.post("/chat/completions", json=chat_body(model="x/y")).headers["X-Request-Id"],
        ]
        with acme_http.stream(
            "POST",
            "/chat/completions",
            json=chat_body(stream=True, mock={"chunks": 40, "chunk_delay_ms": 50}),
        ) as response:
            ids.append(response.headers["X-Request-Id"])
            next(response.iter_lines())
        wait_until(
            lambda: len([e for e in stream_events() if not e.provisional]) >= len(ids),
            timeout=5,
            what="the disconnect's event",
        )
        recorded = [event.request_id for event in stream_events() if not event.provisional]
        opened = [event.request_id for event in stream_events() if event.provisional]

    assert sorted(recorded) == sorted(ids)
    # Each stream that relayed a first chunk also wrote one provisional opening entry.
    assert sorted(opened) == sorted([ids[1], ids[2], ids[5]])
