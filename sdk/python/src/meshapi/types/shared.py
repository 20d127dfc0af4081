"""Shapes shared by several endpoints: OpenAI's list object."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import Field

from meshapi.types._base import Response

ItemT = TypeVar("ItemT")


class ListPage(Response, Generic[ItemT]):
    """`{"object": "list", "data": [...]}`; `has_more`/`count`/`next` where the endpoint pages."""

    object: str = "list"
    data: list[ItemT] = Field(default_factory=list)
    has_more: bool = False
    count: int | None = None
    next: str | None = None
    first_id: str | None = None
    last_id: str | None = None


class Deleted(Response):
    id: str = ""
    object: str = ""
    deleted: bool = True
