"""Base models: responses keep fields the server adds later; requests pass unknown fields through."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, PrivateAttr


class Response(BaseModel):
    """What the gateway answers: unknown fields are kept (as attributes) rather than rejected.
    `_request_id` is the answer's `X-Request-Id` (quote it when asking for support)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())
    _request_id: str | None = PrivateAttr(default=None)


class Request(BaseModel):
    """What the SDK sends: unknown keyword arguments are forwarded as JSON fields unchanged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())
