"""Every /v1/* path answers JSON: unknown paths and methods get the envelope (also under DEBUG,
whose own 404 page is HTML), and the trailing slash some clients add works."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keys.services import CreatedKey
from tests.conftest import chat_body
from tests.support.gateway import GatewayServer


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PUT"])
@pytest.mark.parametrize("path", ["/v1/nope", "/v1/chat/complete", "/v1/chat/completions/extra", "/v1/"])
def test_unknown_api_paths_are_enveloped_404s(acme_http: httpx.Client, method: str, path: str) -> None:
    url = acme_http.base_url.join(path)
    body = assert_json_error(acme_http.request(method, url), 404, "not_found")
    assert path in body["error"]["message"]


def test_unknown_api_path_is_json_under_debug_too(debug_gateway: GatewayServer, acme_key: CreatedKey) -> None:
    for path in ("/v1/nope", "/v1/engines/davinci/completions"):
        response = httpx.post(
            f"{debug_gateway.base_url}{path}", headers={"Authorization": f"Bearer {acme_key.plaintext}"}
        )
        assert_json_error(response, 404, "not_found")
    # Outside /v1/ the DEBUG page stays (for the admin's developers).
    assert "text/html" in httpx.get(f"{debug_gateway.base_url}/nope").headers["content-type"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/chat/completions", "POST"),
        ("PUT", "/chat/completions", "POST"),
        ("DELETE", "/models", "GET"),
        ("POST", "/models/openai/gpt-4o", "GET"),
    ],
)
def test_wrong_method_is_a_json_405(acme_http: httpx.Client, method: str, path: str, allowed: str) -> None:
    response = acme_http.request(method, path)
    assert_json_error(response, 405, "validation_error")
    assert response.headers["allow"] == allowed


def test_wrong_method_on_management_api_is_a_json_405(acme_http: httpx.Client) -> None:
    response = acme_http.request("PUT", "/usage")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"]


def test_trailing_slash_on_completions_works(acme_http: httpx.Client) -> None:
    response = acme_http.post("/chat/completions/", json=chat_body())
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_trailing_slash_on_models_and_management_apis_works(acme_http: httpx.Client) -> None:
    assert acme_http.get("/models/").json()["object"] == "list"
    assert acme_http.get("/models/openai/gpt-4o/").json()["id"] == "openai/gpt-4o"
    assert acme_http.get("/templates/").status_code == 200
    assert acme_http.get("/usage/").status_code == 200


def test_sdk_with_a_trailing_slash_base_url(api_url: str, acme_key: CreatedKey) -> None:
    from openai import OpenAI

    with OpenAI(base_url=f"{api_url}/", api_key=acme_key.plaintext, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content
