"""Request ids: `req_` + ULID, sortable by time and unique across workers."""

from __future__ import annotations

from ulid import ULID


def new_request_id() -> str:
    return f"req_{ULID()}"


def request_id_of(request: object) -> str:
    """The id RequestIdMiddleware gave `request` (a fresh one for requests it never saw)."""
    return getattr(request, "request_id", None) or new_request_id()
