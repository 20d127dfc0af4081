"""Every error is the seeds' ErrorEnvelope with the right status and code; client errors never reach
the upstream."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from keys.models import ApiKey
from keys.services import CreatedKey, api_key_create, api_keys_invalidate_cached
from simulator.server import SimulatorServer
from tests.conftest import chat_body

ENVELOPE_FIELDS = {"code", "message", "param", "details", "provider_error", "retry_after_seconds", "type"}
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == ENVELOPE_FIELDS
    assert body["error"]["code"] == code
    assert body["error"]["type"] == OPENAI_TYPES[status]
    assert body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sk-not-ours"},
        {"Authorization": "Bearer rsk_01JXXXXXXXXXXXXXXXXXXXXXXX"},
    ],
    ids=["missing", "wrong-scheme", "empty", "malformed", "unknown"],
)
def test_missing_malformed_or_unknown_key_is_401(api_url: str, headers: dict[str, str]) -> None:
    response = httpx.post(f"{api_url}/chat/completions", json=chat_body(), headers=headers)
    assert_envelope(response, 401, "unauthorized")


def _key_request(api_url: str, key: CreatedKey) -> httpx.Response:
    return httpx.post(
        f"{api_url}/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {key.plaintext}"}
    )


@pytest.mark.parametrize("change", ["revoked", "expired", "inactive", "suspended"])
def test_key_that_is_not_current_is_403(api_url: str, acme_key: CreatedKey, change: str) -> None:
    assert _key_request(api_url, acme_key).status_code == 200  # cached as valid first
    key = ApiKey.objects.select_related("tenant").get(pk=acme_key.api_key.pk)
    if change == "revoked":
        key.revoked_at = timezone.now()
    elif change == "expired":
        key.expires_at = timezone.now() - timedelta(seconds=1)
    elif change == "inactive":
        key.is_active = False
    else:
        key.tenant.suspended = True
        key.tenant.save()
    key.save()
    api_keys_invalidate_cached(keys=[key])
    assert_envelope(_key_request(api_url, acme_key), 403, "forbidden")


def test_unknown_model_is_404(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    error = assert_envelope(
        acme_http.post("/chat/completions", json=chat_body(model="openai/gpt-nonexistent")),
        404,
        "model_not_found",
    )
    assert error["param"] == "model"
    assert simulator.requests() == []


def test_known_model_of_unconfigured_provider_is_503(acme_http: httpx.Client) -> None:
    error = assert_envelope(
        acme_http.post("/chat/completions", json=chat_body(model="anthropic/claude-sonnet-4-5")),
        503,
        "provider_not_available",
    )
    assert "anthropic/claude-sonnet-4-5" in error["message"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"model": "openai/gpt-4o", "messages": []}, ["body", "messages"]),
        ({"model": "openai/gpt-4o"}, ["body", "messages"]),
        (chat_body(max_tokens=0), ["body", "max_tokens"]),
        (chat_body(max_tokens="ten"), ["body", "max_tokens"]),
        (chat_body(user="u" * 257), ["body", "user"]),
        (chat_body(temperature=3), ["body", "temperature"]),
        (chat_body(messages=[{"role": "wizard", "content": "hi"}]), ["body", "messages", 0, "role"]),
        (chat_body(messages=[{"content": "hi"}]), ["body", "messages", 0, "role"]),
        (chat_body(stream="yes please"), ["body", "stream"]),
        (chat_body(tool_choice="sometimes"), ["body", "tool_choice"]),
        (chat_body(stop=["a", "b", "c", "d", "e"]), ["body", "stop"]),
        (
            chat_body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            ["body", "messages", 0, "content"],
        ),
    ],
    ids=[
        "empty-messages",
        "no-messages",
        "max-tokens-0",
        "max-tokens-type",
        "user-too-long",
        "temperature",
        "bad-role",
        "missing-role",
        "stream-type",
        "tool-choice",
        "too-many-stops",
        "image-part-without-url",
    ],
)
def test_schema_violations_are_422_with_pydantic_details(
    acme_http: httpx.Client, simulator: SimulatorServer, body: dict[str, Any], loc: list[Any]
) -> None:
    error = assert_envelope(acme_http.post("/chat/completions", json=body), 422, "validation_error")
    assert error["details"], error
    assert any(detail["loc"][: len(loc)] == loc for detail in error["details"]), error["details"]
    assert all({"loc", "msg", "type"} <= set(detail) for detail in error["details"])
    assert simulator.requests() == []


@pytest.mark.parametrize(
    "raw",
    [b'{"model": "openai/gpt-4o", "messages": [', b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000, b"[1, 2]", b""],
    ids=["truncated", "invalid-utf8", "deeply-nested", "not-an-object", "empty"],
)
def test_unparseable_bodies_are_422_not_500(
    acme_http: httpx.Client, simulator: SimulatorServer, raw: bytes
) -> None:
    response = acme_http.post("/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    error = assert_envelope(response, 422, "validation_error")
    assert error["param"] == "body"
    assert simulator.requests() == []


def test_wrong_content_type_is_415(acme_http: httpx.Client, simulator: SimulatorServer) -> None:
    response = acme_http.post("/chat/completions", data={"model": "openai/gpt-4o"})
    assert_envelope(response, 415, "validation_error")
    assert simulator.requests() == []


def test_oversized_body_is_413_before_it_is_buffered(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    huge = b'{"messages": [{"role": "user", "content": "' + b"x" * (11 * 1024 * 1024) + b'"}]}'
    response = acme_http.post("/chat/completions", content=huge, headers={"Content-Type": "application/json"})
    error = assert_envelope(response, 413, "validation_error")
    assert error["param"] == "body"
    assert simulator.requests() == []


def test_oversized_chunked_body_without_length_is_413(acme_http: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(12):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    response = acme_http.post(
        "/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 413, "validation_error")


def test_upstream_failure_is_502_with_provider_error(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(mock={"status": 500}))
    error = assert_envelope(response, 502, "upstream_error")
    assert error["provider_error"]["provider"] == "openai"
    assert error["provider_error"]["status"] == 500
    assert error["provider_error"]["message"]
    assert error["provider_error"]["type"] == "server_error"


def test_upstream_slower_than_request_timeout_is_504(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions", json=chat_body(timeout=0.5, mock={"delay_s": 3}))
    error = assert_envelope(response, 504, "gateway_timeout")
    assert error["provider_error"]["provider"] == "openai"


def test_unknown_api_path_is_an_enveloped_404(acme_http: httpx.Client) -> None:
    assert_envelope(acme_http.get("/nothing-here"), 404, "not_found")


def test_request_fields_cannot_change_upstream_url_headers_or_credentials(
    acme_http: httpx.Client, simulator: SimulatorServer
) -> None:
    body = chat_body(
        api_key="sk-attacker",
        base_url="http://evil.example",
        headers={"Authorization": "Bearer x"},
        extra_headers={"X-Evil": "1"},
        url="http://evil.example/v1",
    )
    response = acme_http.post(
        "/chat/completions", json=body, headers={"X-Forwarded-Host": "evil", "X-Evil": "1"}
    )
    assert response.status_code == 200
    received = simulator.requests()[-1]
    assert received["path"] == "/v1/chat/completions"
    assert received["headers"]["authorization"] == "Bearer sk-sim-openai"
    assert "x-evil" not in received["headers"] and "x-forwarded-host" not in received["headers"]


def test_other_tenants_cannot_use_a_revoked_key_after_rotation(api_url: str, tenant_acme: Any) -> None:
    """A second key of the same tenant keeps working when the first is revoked."""
    first = api_key_create(tenant=tenant_acme, name="first")
    second = api_key_create(tenant=tenant_acme, name="second")
    ApiKey.objects.filter(pk=first.api_key.pk).update(revoked_at=timezone.now())
    api_keys_invalidate_cached(keys=[first.api_key])
    assert _key_request(api_url, first).status_code == 403
    assert _key_request(api_url, second).status_code == 200
