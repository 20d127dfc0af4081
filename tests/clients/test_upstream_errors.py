"""Upstream errors keep their meaning in every client: an upstream 429 is the client's
RateLimitError carrying Retry-After, an upstream 400 its BadRequestError, never retried."""

from __future__ import annotations

import litellm
import openai
import pytest
from langchain_openai import ChatOpenAI
from litellm.exceptions import BadRequestError, RateLimitError
from openai import OpenAI

from simulator.server import SimulatorServer
from tests.clients.conftest import MODEL

HI = [{"role": "user", "content": "hi"}]
CONTEXT_TOO_LONG = "This model's maximum context length is 128000 tokens."


def test_upstream_429_is_the_sdks_rate_limit_error_with_retry_after(
    mesh: tuple[str, str], simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=None, status=429, retry_after=7)
    with (
        OpenAI(base_url=mesh[0], api_key=mesh[1], max_retries=0) as sdk,
        pytest.raises(openai.RateLimitError) as raised,
    ):
        sdk.chat.completions.create(model=MODEL, messages=HI)  # type: ignore[arg-type]
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.body["retry_after_seconds"] == 7  # type: ignore[index]
    with pytest.raises(openai.RateLimitError):
        ChatOpenAI(model=MODEL, base_url=mesh[0], api_key=mesh[1], max_retries=0).invoke("hi")  # type: ignore[arg-type]
    with pytest.raises(RateLimitError):
        litellm.completion(model=MODEL, api_base=mesh[0], api_key=mesh[1], messages=HI, num_retries=0)


def test_upstream_400_is_bad_request_and_no_client_retries_it(
    mesh: tuple[str, str], simulator: SimulatorServer
) -> None:
    simulator.script(model="gpt-4o-mini", times=None, status=400, error_message=CONTEXT_TOO_LONG)
    with OpenAI(base_url=mesh[0], api_key=mesh[1]) as sdk, pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=HI)  # type: ignore[arg-type]  # default retries
    assert CONTEXT_TOO_LONG in str(raised.value)
    assert len(simulator.requests()) == 1  # neither the SDK nor the gateway retried it
    with pytest.raises(openai.BadRequestError):
        ChatOpenAI(model=MODEL, base_url=mesh[0], api_key=mesh[1]).invoke("hi")  # type: ignore[arg-type]
    assert len(simulator.requests()) == 2
    with pytest.raises(BadRequestError):
        litellm.completion(model=MODEL, api_base=mesh[0], api_key=mesh[1], messages=HI)
    assert len(simulator.requests()) == 3
