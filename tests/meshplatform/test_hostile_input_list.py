"""The hand-made hostile inputs (issue 16's list, each once a 500): every one is a 4xx whose body
matches the served OpenAPI document's ErrorEnvelope, and none reaches an upstream."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from django.test import RequestFactory

from meshplatform.handlers import server_error
from simulator.server import SimulatorServer
from tests.templates_app.conftest import template_body

DEEP_OBJECT = '{"a":' * 300 + "1" + "}" * 300
MESSAGES = '[{"role":"user","content":"hi"}]'
CHAT = '{"model":"openai/gpt-4o-mini","messages":' + MESSAGES + ",{extra}}"


def chat(extra: str) -> str:
    return CHAT.replace("{extra}", extra)


# (method, path under /v1, raw JSON body or None)
HOSTILE: list[tuple[str, str, str | None]] = [
    ("POST", "/chat/completions", chat(f'"x_unknown":{DEEP_OBJECT}')),
    ("POST", "/chat/completions", chat('"x_unknown":' + "[" * 1024 + "]" * 1024)),
    ("POST", "/chat/completions", chat('"x_unknown":' + "[" * 10_000 + "]" * 10_000)),
    (
        "POST",
        "/chat/completions",
        '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi","x":' + DEEP_OBJECT + "}]}",
    ),
    ("POST", "/chat/completions", chat(f'"response_format":{DEEP_OBJECT}')),
    (
        "POST",
        "/chat/completions",
        chat(f'"tools":[{{"type":"function","function":{{"name":"f","parameters":{DEEP_OBJECT}}}}}]'),
    ),
    ("POST", "/chat/completions", chat('"template":"t\\u0000x"')),
    ("POST", "/chat/completions", chat('"session_id":"s\\u0000"')),
    ("POST", "/chat/completions", '{"model":"openai/\\u0000","messages":' + MESSAGES + "}"),
    ("POST", "/chat/completions", chat('"n":"2"')),
    ("POST", "/chat/completions", chat('"stream":"yes"')),
    ("POST", "/templates", "[" * 10_000 + "]" * 10_000),
    ("POST", "/templates", '{"name":"deep","messages":' + MESSAGES + ',"params":{"x":' + DEEP_OBJECT + "}}"),
    ("POST", "/templates", '{"name":"nul","messages":[{"role":"user","content":"a\\u0000b"}]}'),
    ("POST", "/templates", '{"name":"a\\u0000b","messages":' + MESSAGES + "}"),
    ("PATCH", "/templates/support-reply", '{"messages":[{"role":"user","content":"\\u0000"}]}'),
    ("GET", "/templates/%00", None),
    ("GET", "/templates/a%00b", None),
    ("GET", "/templates/a%00b/versions", None),
    ("POST", "/templates/a%00b/render", '{"variables":{}}'),
    ("POST", "/templates/support-reply/render", '{"variables":{"company":"x\\u0000"}}'),
    ("PATCH", "/templates/a%00b", '{"description":"x"}'),
    ("DELETE", "/templates/a%00b", None),
    ("GET", "/usage?key=%C2%B2", None),
    ("GET", "/usage?key=99999999999999999999999", None),
    ("GET", "/usage?key=%00", None),
    ("GET", f"/usage?offset={2**63}", None),
    ("GET", f"/usage?limit={2**64}", None),
    ("GET", "/usage?offset=-1", None),
    ("GET", "/usage?from=9999-12-31", None),
    ("GET", "/usage?session_id=a%00b", None),
    ("GET", "/usage?model=%00", None),
    ("POST", "/embeddings", '{"model":"openai/text-embedding-3-small","input":' + DEEP_OBJECT + "}"),
    (
        "POST",
        "/embeddings",
        '{"model":"openai/text-embedding-3-small","input":' + "[" * 10_000 + "]" * 10_000 + "}",
    ),
    (
        "POST",
        "/embeddings",
        '{"model":"openai/text-embedding-3-small","input":[' + ",".join(['"x"'] * 5000) + "]}",
    ),
    ("POST", "/embeddings", '{"model":"openai/text-embedding-3-small","input":"a\\u0000b"}'),
    ("POST", "/embeddings", '{"model":"openai/text-embedding-3-small","input":[1e400]}'),
    ("POST", "/embeddings", '{"model":"openai/text-embedding-3-small","input":[99999999999999999999999]}'),
    ("POST", "/images/generations", '{"model":"openai/dall-e-2","prompt":"p","n":99999999999999999999999}'),
    ("POST", "/images/generations", '{"model":"openai/dall-e-2","prompt":"p","size":"1x1"}'),
    ("POST", "/images/generations", '{"model":"openai/dall-e-2","prompt":"p\\u0000"}'),
    ("POST", "/images/generations", '{"model":"openai/dall-e-2","prompt":' + DEEP_OBJECT + "}"),
]


@pytest.fixture(scope="module")
def envelope_validator(gateway_server: Any) -> jsonschema.Draft202012Validator:
    """The served document's ErrorEnvelope, as a JSON Schema validator."""
    document = httpx.get(f"{gateway_server.base_url}/v1/openapi.json").json()
    schema = {"$ref": "#/components/schemas/ErrorEnvelope", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_every_hostile_input_is_a_documented_4xx(
    acme_http: httpx.Client,
    simulator: SimulatorServer,
    envelope_validator: jsonschema.Draft202012Validator,
) -> None:
    assert acme_http.post("/templates", json=template_body()).status_code == 201
    answers: list[tuple[str, str, int]] = []
    for method, path, body in HOSTILE:
        response = acme_http.request(
            method,
            path,
            content=body.encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        answers.append((method, path[:60], response.status_code))
        assert 400 <= response.status_code < 500, (method, path[:80], response.text[:300])
        envelope_validator.validate(response.json())
        assert response.json()["request_id"] == response.headers["x-request-id"]
    server_errors = [answer for answer in answers if answer[2] >= 500]
    assert server_errors == []
    assert simulator.requests() == []
    assert len(acme_http.get("/templates").json()["data"]) == 1  # none of the bad writes stored anything
    # Edges that are valid (an empty report), not errors: the default 30-day window cannot underflow.
    assert acme_http.get("/usage?to=0001-01-01").json()["from"] == "0001-01-01"
    assert acme_http.get("/usage?from=0001-01-01&to=9999-12-31").status_code == 200


def test_the_500_envelope_says_internal_error(settings: Any) -> None:
    request = RequestFactory().get("/v1/chat/completions")
    request.request_id = "req_test"  # type: ignore[attr-defined]
    response = server_error(request)
    assert response.status_code == 500
    assert b'"code":"internal_error"' in response.content
