"""The Responses API tests run against the gateway with every provider configured (each pointed at
the simulator), so a conversation can move from `openai/*` to `anthropic/*` or `gemini/*`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from keys.services import CreatedKey
from tests.providers.conftest import (
    providers_gateway as providers_gateway,
)
from tests.providers.conftest import (
    providers_gateway_server as providers_gateway_server,
)
from tests.providers.conftest import (
    providers_url as providers_url,
)

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"
GEMINI_MODEL = "gemini/gemini-2.5-flash"

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
def acme(providers_url: str, acme_key: CreatedKey) -> Iterator[OpenAI]:
    sdk = OpenAI(base_url=providers_url, api_key=acme_key.plaintext, max_retries=0, timeout=30)
    yield sdk
    sdk.close()


@pytest.fixture
def globex(providers_url: str, globex_key: CreatedKey) -> Iterator[OpenAI]:
    sdk = OpenAI(base_url=providers_url, api_key=globex_key.plaintext, max_retries=0, timeout=30)
    yield sdk
    sdk.close()


@pytest.fixture
def acme_raw(providers_url: str, acme_key: CreatedKey) -> Iterator[httpx.Client]:
    """httpx with acme's key, for wire-level checks."""
    headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
    with httpx.Client(base_url=providers_url, headers=headers, timeout=30) as client:
        yield client
