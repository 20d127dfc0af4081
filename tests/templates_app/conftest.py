"""Fixtures for the template tests: globex's HTTP client, and a helper to create templates over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from keys.services import CreatedKey

TemplateFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def globex_http(api_url: str, globex_key: CreatedKey) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {globex_key.plaintext}"}, timeout=30
    ) as client:
        yield client


def template_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "support-reply",
        "description": "Answers support tickets",
        "messages": [
            {"role": "system", "content": "You are the support agent of {{company}} on the {{ plan }} plan."}
        ],
    }
    body.update(overrides)
    return body


@pytest.fixture
def create_template(acme_http: httpx.Client) -> TemplateFactory:
    """POSTs a template as acme (or with `client=`) and returns the created template's JSON."""

    def create(client: httpx.Client | None = None, **overrides: Any) -> dict[str, Any]:
        response = (client or acme_http).post("/templates", json=template_body(**overrides))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return create
