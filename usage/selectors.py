"""Reads of usage: grouped reports from the rollups and the deltas not yet folded into them, the events
behind them for export."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf, TruncDate

from keys.models import ApiKey
from usage.models import UsageDailyKeyRollup, UsageDailyRollup, UsageEvent, UsageRollupDelta, UsageRollupStale
from usage.session_months import session_months_apply, session_rows_of_range
from usage.session_top import rows_of_filter, session_top
from usage.types import GroupBy, UsageFilter, UsageGroup, UsageReport, UsageTotals

METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd")
# The rollup columns each grouping reads, the group's value first.
GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    "session_id": ("session_id",),
    "key": ("api_key_id", "api_key__prefix", "api_key__name"),
    "model": ("model",),
    "tenant": ("tenant_id", "tenant__name"),
}
# CSV column → event field, in export order.
EXPORT_FIELDS: dict[str, str] = {
    "created_at": "created_at", "request_id": "request_id", "tenant": "tenant__name",
    "key_prefix": "api_key__prefix", "session_id": "session_id", "template_id": "template_id",
    "template_version": "template_version", "model_requested": "model_requested",
    "model_served": "model_served", "provider": "provider", "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens", "cached_tokens": "cached_tokens",
    "tokens_estimated": "tokens_estimated", "cost_usd": "cost_usd", "latency_ms": "latency_ms",
    "ttft_ms": "ttft_ms", "http_status": "http_status", "error_code": "error_code",
    "streamed": "streamed", "cancelled": "cancelled",
}  # fmt: skip


MAX_ID_DIGITS = 18  # every 18-digit number fits PostgreSQL's bigint (max 9.2e18)


def usage_key_of_tenant(*, tenant_id: int, ref: str) -> ApiKey | None:
    """One of the tenant's keys by id or display prefix (never another tenant's)."""
    keys = ApiKey.objects.filter(tenant_id=tenant_id)
    # ASCII digits only ("²".isdigit() is true), and short enough to be a bigint primary key.
    is_id = ref.isascii() and ref.isdigit() and len(ref) <= MAX_ID_DIGITS
    match = Q(prefix=ref) | (Q(pk=int(ref)) if is_id else Q())
    return keys.filter(match).order_by("pk").first()


def _stale_slices(usage_filter: UsageFilter) -> list[tuple[dt.date, int]]:
    """(day, tenant) slices in range with deltas not yet folded (written since the last fold)."""
    stale = UsageRollupStale.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        stale = stale.filter(tenant_id=usage_filter.tenant_id)
    return sorted(stale.values_list("day", "tenant_id"))


def _in_range(rows: QuerySet[Any], usage_filter: UsageFilter) -> QuerySet[Any]:
    """Rollup-shaped rows (a rollup grain or the deltas) narrowed by the filter."""
    rows = rows.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.session_id is not None:
        rows = rows.filter(session_id=usage_filter.session_id)
    return rows_of_filter(rows, usage_filter)


def _rollups(usage_filter: UsageFilter, *, by_session: bool = False) -> QuerySet[Any]:
    """The folded rollups: the session grain only when the session is grouped or filtered on,
    else the session-free one (rows per keys × models × days, not per session). The index of
    every branch starts with (tenant, day) or (day): see the models' Meta."""
    if by_session or usage_filter.session_id is not None:
        return _in_range(UsageDailyRollup.objects.all(), usage_filter)
    return _in_range(UsageDailyKeyRollup.objects.all(), usage_filter)


def _deltas(usage_filter: UsageFilter) -> QuerySet[UsageRollupDelta]:
    """The deltas not yet folded into the rollups (usage.folding): read in the same statement as
    the rollups, they make a request count in reports from the commit of its event, exactly once
    (a fold moves a delta into the rollups in one transaction). A few rows per flush batch since
    the last fold, whatever the size of the day."""
    return _in_range(UsageRollupDelta.objects.all(), usage_filter)


def _like_rollups(events: QuerySet[UsageEvent], usage_filter: UsageFilter) -> QuerySet[UsageEvent]:
    """`events` shaped like rollup rows (`day`, `model`: served, else asked) and narrowed by the
    filter's session, key and model."""
    events = events.annotate(
        day=TruncDate("created_at", tzinfo=dt.UTC),
        model=Coalesce(NullIf("model_served", Value("")), "model_requested"),
    )
    if usage_filter.session_id is not None:
        events = events.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        events = events.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        events = events.filter(model=usage_filter.model)
    return events


def _comparison_events(usage_filter: UsageFilter) -> QuerySet[UsageEvent]:
    """One comparison's events (a few, found by the comparison_id index), shaped like rollup rows,
    within the filter's tenant, days and other filters."""
    start = dt.datetime.combine(usage_filter.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(usage_filter.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    events = UsageEvent.objects.filter(
        comparison_id=usage_filter.comparison_id, created_at__gte=start, created_at__lt=end
    )
    if usage_filter.tenant_id is not None:
        events = events.filter(tenant_id=usage_filter.tenant_id)
    return _like_rollups(events, usage_filter)


_ROLLUP_SUMS = {name: Sum(name) for name in METRICS}
_EVENT_SUMS = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(http_status__gte=400)),
    **{name: Sum(name) for name in METRICS[2:]},
}


def _grouped(rows: QuerySet[Any], fields: tuple[str, ...], sums: dict[str, Any]) -> QuerySet[Any]:
    grouped: QuerySet[Any] = rows.values(*fields).annotate(**sums).order_by()
    return grouped


def _union_sql(parts: list[QuerySet[Any]], columns: list[str]) -> tuple[str, list[Any]]:
    """`WITH u(columns) AS (part UNION ALL part)`: the parts' SQL compiled by the ORM for this
    database (PostgreSQL or make run's SQLite), named by position (their own names differ)."""
    selects: list[str] = []
    params: list[Any] = []
    for index, part in enumerate(parts):
        try:
            sql, part_params = part.query.sql_with_params()
        except EmptyResultSet:  # a part that can match nothing (no month of the range read whole)
            continue
        selects.append(f"SELECT * FROM ({sql}) AS part{index}")
        params.extend(part_params)
    if not selects:
        selects.append("SELECT " + ", ".join(["NULL"] * len(columns)) + " WHERE 1 = 0")
    return f"WITH u({', '.join(columns)}) AS ({' UNION ALL '.join(selects)})", params


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def _row_totals(row: dict[str, Any], prefix: str = "") -> UsageTotals:
    return UsageTotals(
        requests=int(row[f"{prefix}requests"] or 0),
        errors=int(row[f"{prefix}errors"] or 0),
        prompt_tokens=int(row[f"{prefix}prompt_tokens"] or 0),
        completion_tokens=int(row[f"{prefix}completion_tokens"] or 0),
        cached_tokens=int(row[f"{prefix}cached_tokens"] or 0),
        cost_usd=_decimal(row[f"{prefix}cost_usd"]),
    )


# Memory a report's aggregation may hash in before spilling to disk: grouping 50,000 sessions
# spilled in 29 batches at PostgreSQL's default 4 MB (x2 hash_mem_multiplier) and took twice as long.
REPORT_WORK_MEM = "64MB"


def _fetch(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # for this transaction only (connections are pooled)
            cursor.execute("SELECT set_config('work_mem', %s, true)", [REPORT_WORK_MEM])
            # Serial plans: a parallel one hashes the sessions in each worker, then sorts and merges
            # every partial group (50,000 sessions: 1.27 s against 0.88 s serial, EXPLAIN ANALYZE).
            cursor.execute("SELECT set_config('max_parallel_workers_per_gather', '0', true)")
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _grouped_sql(
    usage_filter: UsageFilter,
    group_by: GroupBy,
    narrow: Q | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> tuple[str, list[Any]]:
    """`WITH …, grouped AS (…)`: one row per group (g0…, the metrics), the rollups plus the deltas
    not yet folded into them (fresh from the ledger flush that stored the events); `narrow` (some
    sessions of some tenants: usage_top_groups) applies to every part; `metrics` (requests at
    least) the sums read (the groups are the same)."""
    fields = GROUP_FIELDS[group_by]
    keys = [f"g{n}" for n in range(len(fields))]
    if usage_filter.comparison_id is not None:  # rollups do not keep it: the comparison's events
        event_sums = {name: _EVENT_SUMS[name] for name in metrics}
        parts = [_grouped(_comparison_events(usage_filter), fields, event_sums)]
    else:
        parts = _rolled_up_parts(usage_filter, group_by, narrow, metrics)
    union, params = _union_sql(parts, [*keys, *metrics])
    sums = ", ".join(f"SUM({m}) AS {m}" for m in metrics)
    # Every event counts a request: a group netting zero requests (a session only on days a
    # month's row had subtracted) has no event in range.
    grouped = (
        f"{union}, grouped AS (SELECT {', '.join(keys)}, {sums} FROM u GROUP BY {', '.join(keys)} "
        "HAVING SUM(requests) <> 0)"
    )
    return grouped, params


def _order(group_by: GroupBy) -> str:
    return "g0" if group_by == "day" else "cost_usd DESC, g0"


# Sessions per narrowed statement: its IN list is repeated in each part (under PostgreSQL's 65,535
# bound parameters).
SESSIONS_PER_LOOKUP = 5000


def _sessions_narrow(sessions: Collection[str], tenants: Collection[int]) -> Q:
    return Q(session_id__in=sorted(sessions), tenant_id__in=sorted(tenants))


def _session_costs(
    usage_filter: UsageFilter, sessions: Collection[str], tenants: Collection[int]
) -> dict[str, Decimal]:
    """Each of `sessions`' exact cost over the range: the report's statement narrowed to them."""
    costs: dict[str, Decimal] = {}
    ordered = sorted(sessions)
    for start in range(0, len(ordered), SESSIONS_PER_LOOKUP):
        chunk = ordered[start : start + SESSIONS_PER_LOOKUP]
        grouped, params = _grouped_sql(usage_filter, "session_id", _sessions_narrow(chunk, tenants))
        for row in _fetch(f"{grouped} SELECT g0, cost_usd FROM grouped", params):
            costs[str(row["g0"])] = _decimal(row["cost_usd"])
    return costs


def _sessions_ordered(
    usage_filter: UsageFilter, sessions: Collection[str], tenants: Collection[int], limit: int
) -> list[UsageGroup]:
    """The `limit` largest of `sessions`, ordered by the report's own ORDER BY (its ties, its collation)."""
    if not sessions:
        return []
    grouped, params = _grouped_sql(usage_filter, "session_id", _sessions_narrow(sessions, tenants))
    order = _order("session_id")
    rows = _fetch(f"{grouped} SELECT * FROM grouped ORDER BY {order} LIMIT {int(limit)}", params)
    return [_group_of("session_id", row) for row in rows]


def usage_top_groups(*, usage_filter: UsageFilter, group_by: GroupBy, limit: int) -> list[UsageGroup]:
    """The `limit` largest groups as usage_report orders them, without its totals and group count:
    those are window sums over every group (50,000 sessions for a top ten). Sessions by a
    threshold algorithm over each whole month's sessions and each (day, key, model) slice's in cost
    order (usage.session_top): the rows read grow with `limit`, the lists and the skew, not the
    sessions; the full statement where it does not apply (usage.session_top's docstring)."""
    if group_by == "session_id":
        top = session_top(
            usage_filter=usage_filter,
            n=limit,
            today=dt.datetime.now(dt.UTC).date(),
            exact=partial(_session_costs, usage_filter),
            ordered=partial(_sessions_ordered, usage_filter),
        )
        if top is not None:
            return top
    return usage_top_groups_scanned(usage_filter=usage_filter, group_by=group_by, limit=limit)


def usage_top_groups_scanned(*, usage_filter: UsageFilter, group_by: GroupBy, limit: int) -> list[UsageGroup]:
    """usage_top_groups by the full statement: every group summed, sorted, cut (the reference
    the threshold algorithm is tested and benchmarked against)."""
    grouped, params = _grouped_sql(usage_filter, group_by)
    rows = _fetch(f"{grouped} SELECT * FROM grouped ORDER BY {_order(group_by)} LIMIT {int(limit)}", params)
    return [_group_of(group_by, row) for row in rows]


def usage_totals(*, usage_filter: UsageFilter) -> UsageTotals:
    """The range's totals, grouped by tenant to read the session-free rollups (a few rows a day)."""
    return usage_report(usage_filter=usage_filter, group_by="tenant", limit=1).totals


def usage_report(
    *, usage_filter: UsageFilter, group_by: GroupBy, offset: int = 0, limit: int | None = None
) -> UsageReport:
    """Totals and groups, summed, ordered and cut in one SQL statement; days in date order, other
    groups by cost, largest first. Window sums give the totals and the group count alongside."""
    grouped, params = _grouped_sql(usage_filter, group_by)
    windows = ", ".join(f"SUM({m}) OVER () AS total_{m}" for m in METRICS)
    page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
    rows = _fetch(
        f"{grouped} SELECT grouped.*, COUNT(*) OVER () AS group_count, {windows} "
        f"FROM grouped ORDER BY {_order(group_by)}{page}",
        params,
    )
    if not rows:  # past the last page, or nothing at all: the totals on their own
        totals_sql = ", ".join(f"SUM({m}) AS total_{m}" for m in METRICS)
        summary = _fetch(f"{grouped} SELECT COUNT(*) AS group_count, {totals_sql} FROM grouped", params)[0]
    else:
        summary = rows[0]
    totals, group_count = _row_totals(summary, "total_"), int(summary["group_count"])
    if limit is None and offset:
        rows = rows[offset:]
    return UsageReport(
        filter=usage_filter,
        group_by=group_by,
        totals=totals,
        groups=[_group_of(group_by, row) for row in rows],
        group_count=group_count,
    )


def usage_group_count(*, usage_filter: UsageFilter, group_by: GroupBy) -> int:
    """How many groups usage_report has: the same parts and HAVING, summing requests alone, with
    no window sums, no order (the groups of every session of the range are still read)."""
    grouped, params = _grouped_sql(usage_filter, group_by, metrics=("requests",))
    return int(_fetch(f"{grouped} SELECT COUNT(*) AS group_count FROM grouped", params)[0]["group_count"])


def usage_report_page(
    *, usage_filter: UsageFilter, group_by: GroupBy, offset: int, limit: int
) -> UsageReport:
    """usage_report's page, its first page by session read as Top sessions are (usage_top_groups),
    the totals from the session-free rollups (a group netting no request sums nothing) and the
    group count on its own (usage_group_count): equal to usage_report's, without summing every
    metric of every session, ordering them and window sums over them."""
    if group_by != "session_id" or offset or usage_filter.comparison_id is not None:
        return usage_report(usage_filter=usage_filter, group_by=group_by, offset=offset, limit=limit)
    groups = usage_top_groups(usage_filter=usage_filter, group_by=group_by, limit=limit)
    totals = usage_totals(usage_filter=usage_filter)
    count = usage_group_count(usage_filter=usage_filter, group_by=group_by)
    return UsageReport(usage_filter, group_by, totals, groups, count)


def _rolled_up_parts(
    usage_filter: UsageFilter, group_by: GroupBy, narrow: Q | None = None, metrics: tuple[str, ...] = METRICS
) -> list[QuerySet[Any]]:
    """The rollups and the deltas not yet folded, grouped or as rows for the report's GROUP BY:
    sessions from whole months less the days left out where that reads fewer rows
    (usage.session_months), everything else from the daily grains; `narrow` applies to every part."""
    fields = GROUP_FIELDS[group_by]
    if group_by == "session_id" and session_months_apply(usage_filter):
        rows = session_rows_of_range(usage_filter, today=dt.datetime.now(dt.UTC).date(), narrow=narrow)
        deltas = _deltas(usage_filter) if narrow is None else _deltas(usage_filter).filter(narrow)
        # Rows as they are, signed, summed once by the report's own GROUP BY: a month's rows are
        # already one per tenant × session; a first aggregation per part would only add work.
        negated = {f"minus_{name}": -F(name) for name in metrics}
        return [
            *(part.values(*fields, *metrics).order_by() for part in rows.added),
            *(part.values(*fields, **negated).order_by() for part in rows.subtracted),
            deltas.values(*fields, *metrics).order_by(),
        ]
    rollups, deltas = _rollups(usage_filter, by_session=group_by == "session_id"), _deltas(usage_filter)
    if narrow is not None:
        rollups, deltas = rollups.filter(narrow), deltas.filter(narrow)
    sums = {name: _ROLLUP_SUMS[name] for name in metrics}
    return [_grouped(rollups, fields, sums), _grouped(deltas, fields, sums)]


def _day(value: Any) -> dt.date:
    """A day as the database returns it (SQLite: as text)."""
    return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value


def _group_of(group_by: GroupBy, row: dict[str, Any]) -> UsageGroup:
    value = row["g0"]
    if group_by == "day":
        value = _day(value)
    names = {field: row[f"g{n}"] for n, field in enumerate(GROUP_FIELDS[group_by])}
    return UsageGroup(
        value=value.isoformat() if isinstance(value, dt.date) else str(value),
        totals=_row_totals(row),
        key_prefix=names.get("api_key__prefix"),
        key_name=names.get("api_key__name"),
        tenant_name=names.get("tenant__name"),
    )


def usage_spend_by_day(*, usage_filter: UsageFilter, series: GroupBy) -> list[tuple[dt.date, str, Decimal]]:
    """Cost per (day, series value) over the range, fresh like usage_report (the report's chart):
    rollups and deltas in one statement, so one snapshot (a fold between two would count twice)."""
    name = GROUP_FIELDS[series][-1] if series in ("tenant", "key") else GROUP_FIELDS[series][0]
    parts = [
        rows.values("day", name).annotate(cost=Sum("cost_usd")).order_by()
        for rows in (_rollups(usage_filter), _deltas(usage_filter))
    ]
    union, params = _union_sql(parts, ["day", "value", "cost"])
    rows = _fetch(f"{union} SELECT day, value, SUM(cost) AS cost FROM u GROUP BY day, value", params)
    spent = [(_day(row["day"]), str(row["value"]), _decimal(row["cost"])) for row in rows]
    return sorted(spent)


def usage_daily_spend(*, usage_filter: UsageFilter) -> list[tuple[dt.date, Decimal]]:
    """Cost per day over the whole range, days without usage included as zero."""
    spent: dict[dt.date, Decimal] = {}
    for day, _, cost in usage_spend_by_day(usage_filter=usage_filter, series="day"):
        spent[day] = spent.get(day, Decimal(0)) + cost
    days = (usage_filter.date_to - usage_filter.date_from).days + 1
    dates = [usage_filter.date_from + dt.timedelta(days=n) for n in range(days)]
    return [(day, spent.get(day) or Decimal(0)) for day in dates]


def usage_stale_days(*, usage_filter: UsageFilter) -> int:
    """How many (day, tenant) slices in range wait for the next fold (read with their deltas meanwhile)."""
    return len(_stale_slices(usage_filter))


def usage_events_export(*, usage_filter: UsageFilter, chunk_size: int = 2000) -> Iterator[tuple[Any, ...]]:
    """Every event in range, oldest first, streamed from a server-side cursor `chunk_size` rows at a time."""
    start = dt.datetime.combine(usage_filter.date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(usage_filter.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    events = UsageEvent.objects.filter(created_at__gte=start, created_at__lt=end)
    if usage_filter.tenant_id is not None:
        events = events.filter(tenant_id=usage_filter.tenant_id)
    if usage_filter.session_id is not None:
        events = events.filter(session_id=usage_filter.session_id)
    if usage_filter.key_id is not None:
        events = events.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        events = events.filter(
            Q(model_served=usage_filter.model) | Q(model_served="", model_requested=usage_filter.model)
        )
    rows = events.order_by("created_at", "id").values_list(*EXPORT_FIELDS.values())
    return rows.iterator(chunk_size=chunk_size)
