"""`client.usage.query(...)`: the key's tenant's usage from the daily rollups, grouped, with totals."""

from __future__ import annotations

import datetime as dt
from typing import Any, Unpack

from meshapi._base import RequestOptions
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.usage import UsageGroupBy, UsageReport


def usage_params(
    *,
    date_from: dt.date | str | None,
    date_to: dt.date | str | None,
    group_by: UsageGroupBy | None,
    session_id: str | None,
    key: str | int | None,
    model: str | None,
    limit: int | None,
    offset: int | None,
    comparison_id: str | None = None,
) -> dict[str, Any]:
    def iso(day: dt.date | str | None) -> str | None:
        return day.isoformat() if isinstance(day, dt.date) else day

    return {
        "from": iso(date_from), "to": iso(date_to), "group_by": group_by, "session_id": session_id,
        "key": key, "model": model, "limit": limit, "offset": offset, "comparison_id": comparison_id,
    }  # fmt: skip


class UsageReports:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def query(
        self,
        *,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
        group_by: UsageGroupBy | None = None,
        session_id: str | None = None,
        key: str | int | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        comparison_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> UsageReport:
        """Totals and groups for UTC days `date_from`..`date_to` (default: the last 30 days);
        `key` is a key id or display prefix; `comparison_id` keeps one comparison's model runs."""
        params = usage_params(
            date_from=date_from, date_to=date_to, group_by=group_by, session_id=session_id,
            key=key, model=model, limit=limit, offset=offset, comparison_id=comparison_id,
        )  # fmt: skip
        return self._transport.request(UsageReport, "GET", "/v1/usage", options, params=params)


class AsyncUsageReports:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def query(
        self,
        *,
        date_from: dt.date | str | None = None,
        date_to: dt.date | str | None = None,
        group_by: UsageGroupBy | None = None,
        session_id: str | None = None,
        key: str | int | None = None,
        model: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        comparison_id: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> UsageReport:
        params = usage_params(
            date_from=date_from, date_to=date_to, group_by=group_by, session_id=session_id,
            key=key, model=model, limit=limit, offset=offset, comparison_id=comparison_id,
        )  # fmt: skip
        return await self._transport.request(UsageReport, "GET", "/v1/usage", options, params=params)
