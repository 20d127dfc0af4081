"""GET /v1/usage: the key's tenant's usage, grouped, with totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field

from meshapi.types._base import Response

UsageGroupBy = Literal["day", "session_id", "key", "model"]


class UsageTotals(Response):
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


class UsageKey(Response):
    id: int
    prefix: str = ""
    name: str = ""


class UsageGroup(Response):
    group: str
    """The day (ISO date), session_id, key id or model this row sums."""
    key: UsageKey | None = None
    totals: UsageTotals = Field(default_factory=UsageTotals)


class UsageReport(Response):
    object: str = "usage.report"
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")
    group_by: str = "day"
    totals: UsageTotals = Field(default_factory=UsageTotals)
    data: list[UsageGroup] = Field(default_factory=list)
    count: int = 0
    has_more: bool = False
    next: str | None = None
