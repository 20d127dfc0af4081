"""An upstream's errors keep their meaning for the client: its 400/404/413/422 keep their status and
its code and param, its 429 stays a 429 with its Retry-After, its 401/403 and 5xx are 502; failures
that the upstream certainly did not run are retried once on the same provider (the default, which
this package's gateway runs with), the others never."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.conftest import chat_body
from tests.routing.test_error_envelopes import assert_envelope
from tests.usage.conftest import ledger_events

# OpenAI's documented answer to an over-long prompt.
CONTEXT_LENGTH_BODY = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130013 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]


def sdk(api_url: str, key: CreatedKey, *, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=api_url, api_key=key.plaintext, max_retries=max_retries, timeout=30)


def test_upstream_400_is_bad_request_with_its_code_and_param_and_no_client_retry(
    providers_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    simulator.script(
        model="gpt-4o-mini", times=None, status=400, error_body=orjson.dumps(CONTEXT_LENGTH_BODY).decode()
    )
    client = sdk(providers_url, acme_key, max_retries=2)  # the SDK retries 5xx and 429, never 400
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert error.type == "invalid_request_error"
    body: Any = error.body
    assert "maximum context length" in body["message"]
    assert body["provider_error"] == {
        "provider": "openai",
        "status": 400,
        "message": CONTEXT_LENGTH_BODY["error"]["message"],
        "code": "context_length_exceeded",
        "type": "invalid_request_error",
    }
    assert len(simulator.requests()) == 1  # neither the gateway nor the SDK asked again


def test_upstream_429_is_rate_limit_error_with_the_upstreams_retry_after(
    providers_url: str, acme_key: CreatedKey, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=None, status=429, retry_after=7)
    client = sdk(providers_url, acme_key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    error = caught.value
    assert error.response.headers["retry-after"] == "7"
    body: Any = error.body
    assert body["retry_after_seconds"] == 7
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "rate_limit_error"
    assert body["provider_error"]["status"] == 429
    # A 7 s wait does not fit the retry budget (MESH_UPSTREAM_RETRY_MAX_WAIT_S): asked once.
    assert len(simulator.requests()) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "model_not_found"), (413, "upstream_payload_too_large"), (422, "upstream_unprocessable_entity")],
)
def test_upstream_404_413_422_keep_their_status(
    http: httpx.Client, simulator: SimulatorServer, status: int, code: str
) -> None:
    simulator.script(model="gpt-4o-mini", times=None, status=status)
    error = assert_envelope(http.post("/chat/completions", json=chat_body()), status, code)
    assert error["provider_error"]["status"] == status
    assert len(simulator.requests()) == 1


@pytest.mark.parametrize("status", [401, 403, 500, 503])
def test_upstream_credentials_and_server_errors_are_502(
    http: httpx.Client, simulator: SimulatorServer, status: int
) -> None:
    simulator.script(model="gpt-4o-mini", times=None, status=status)
    error = assert_envelope(http.post("/chat/completions", json=chat_body()), 502, "upstream_error")
    assert error["provider_error"]["status"] == status


def test_a_5xx_is_retried_once_on_the_same_provider_and_both_tries_are_in_the_ledger(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=1, status=503)
    response = http.post("/chat/completions", json=chat_body())
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in simulator.requests()] == ["error", "completed"]
    request_id = response.headers["X-Request-Id"]
    event = ledger_events([request_id])[request_id]
    assert [(a["model"], a["status"]) for a in event.attempts] == [
        ("openai/gpt-4o-mini", 503),
        ("openai/gpt-4o-mini", 200),
    ]


def test_a_short_upstream_429_is_waited_out_and_retried(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=1, status=429, retry_after=1)
    response = http.post("/chat/completions", json=chat_body())
    assert response.status_code == 200, response.text
    assert len(simulator.requests()) == 2


def test_a_read_timeout_is_never_retried_on_the_same_provider(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    """The upstream may be running the request: asking it again could run (and bill) it twice."""
    response = http.post("/chat/completions", json=chat_body(timeout=0.5, mock={"delay_s": 2}))
    assert_envelope(response, 504, "gateway_timeout")
    assert len(simulator.requests()) == 1


def test_a_malformed_answer_is_502_and_not_asked_again(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    response = http.post("/chat/completions", json=chat_body(mock={"malformed": True}))
    assert_envelope(response, 502, "upstream_error")
    assert len(simulator.requests()) == 1


def test_a_client_error_from_the_upstream_stops_the_fallback(
    http: httpx.Client, simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o", times=None, status=422)
    response = http.post(
        "/chat/completions", json=chat_body(model="openai/gpt-4o", models=["openai/gpt-4o-mini"])
    )
    assert_envelope(response, 422, "upstream_unprocessable_entity")
    assert [r["body"]["model"] for r in simulator.requests()] == ["gpt-4o"]
