"""Stored responses belong to one tenant: another tenant's id is a 404 on retrieve, delete and
input_items, and it cannot be continued with previous_response_id."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from tests.responses_api.conftest import OPENAI_MODEL


def test_another_tenants_response_is_not_found(acme: OpenAI, globex: OpenAI) -> None:
    mine = acme.responses.create(model=OPENAI_MODEL, input="acme's secret plan")
    with pytest.raises(openai.NotFoundError):
        globex.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        globex.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        globex.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as refused:
        globex.responses.create(model=OPENAI_MODEL, previous_response_id=mine.id, input="go on")
    assert refused.value.code == "previous_response_not_found"
    # Still there for its own tenant, untouched by globex's delete.
    assert acme.responses.retrieve(mine.id).output_text == mine.output_text
    theirs = globex.responses.create(model=OPENAI_MODEL, input="globex's plan")
    with pytest.raises(openai.NotFoundError):
        acme.responses.retrieve(theirs.id)


def test_every_responses_endpoint_needs_a_key(providers_url: str, acme: OpenAI) -> None:
    mine = acme.responses.create(model=OPENAI_MODEL, input="hi")
    for method, path in (
        ("POST", "/responses"),
        ("GET", f"/responses/{mine.id}"),
        ("DELETE", f"/responses/{mine.id}"),
        ("GET", f"/responses/{mine.id}/input_items"),
    ):
        response = httpx.request(method, f"{providers_url}{path}", json={"input": "hi"}, timeout=30)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", path
    assert acme.responses.retrieve(mine.id).id == mine.id
