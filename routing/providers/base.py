"""The provider adapter interface: build the upstream request, parse its answer, map its errors.

Every adapter speaks OpenAI's chat format towards the pipeline (response objects and
`chat.completion.chunk` dicts), whatever its upstream speaks, so the pipeline never
changes when a provider is added.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from meshplatform.errors import ProviderErrorBody, UpstreamError
from routing.http_client import UpstreamResponse
from usage.types import TokenUsage


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One attempt at one provider: the OpenAI-format body (Mesh fields removed) and its target."""

    upstream_model: str
    body: dict[str, Any]
    stream: bool
    context_window: int


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole non-streamed answer in OpenAI's `chat.completion` shape, and what it used."""

    payload: dict[str, Any]
    usage: TokenUsage


class ProviderAdapter(ABC):
    """One upstream provider. Subclasses are registered by name in `routing.providers.registry`."""

    def __init__(self, *, name: str, api_key: str, base_url: str) -> None:
        self.name = name
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @abstractmethod
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        """The HTTP request for `call`; credentials come from settings, never from the client."""

    @abstractmethod
    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        """Turn a 2xx non-streamed body into an OpenAI-shaped completion."""

    @abstractmethod
    def iter_chunks(self, response: UpstreamResponse, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]:
        """Yield OpenAI-shaped `chat.completion.chunk` dicts; the last one with usage carries it."""

    def map_error(self, status: int, body: bytes) -> UpstreamError:
        """A non-2xx answer as a typed error; 408, 409, 429 and 5xx may succeed elsewhere."""
        return UpstreamError(
            f"The {self.name} upstream answered HTTP {status}.",
            provider_error=self.provider_error(status, _message_of(body)),
            retryable=status in (408, 409, 429) or status >= 500,
        )

    def provider_error(self, status: int | None, message: str | None) -> ProviderErrorBody:
        return {"provider": self.name, "status": status, "message": message}


def usage_from_openai(usage: dict[str, Any] | None) -> TokenUsage:
    """OpenAI's usage object (also used by OpenRouter and most compatible servers)."""
    if not usage:
        return TokenUsage()
    details = usage.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def _message_of(body: bytes) -> str | None:
    """The provider's error message, trimmed; never the whole body (it may echo the prompt)."""
    import orjson

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return text or None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")[:500] or None
    if isinstance(error, str):
        return error[:500]
    return None
