"""The top sessions by cost, exact, without reading every session of the range: a threshold algorithm
(Fagin's TA) over lists of sessions in cost order, read from their indexes.

The lists. A range's folded part is read as usage.session_months plans it: whole months from the
month grain less the days they leave out, and the other months' days from the daily session grain
(every day, when the filter names a key or a model: the month grain has neither). A list is one
tenant's month (UsageMonthlySessionRollup, index usage_session_month_cost_idx), or one (tenant, day,
key, model) slice of the daily grain (UsageDailyRollup, index usage_rollup_slice_cost_idx, migration
usage 0014), read in (cost DESC, session_id) order. A session has at most one row in a list (the
grains' unique constraints), and its total over the range is the sum of its rows in the lists,
minus its rows of the days left out, plus its deltas not yet folded. Day slices are listed from the
session-free grain (UsageDailyKeyRollup: the same slices, a row each, written in the same
transaction as the session rows), narrowed by the filter's tenant, key and model.

Why it is exact. Rollup rows sum event costs, which are never negative, so a session with no delta
and seen in no list yet totals at most the sum of the lists' last costs read (the days left out only
take away). The operator's view groups by session id across tenants: the same id counts once per
tenant's list. Every session with a delta is a candidate from the start (a few rows: the writes
since the last fold), whatever its sign. Once the n-th best exact total is strictly above the bound,
no unseen session can enter the top n nor tie its last row (ties are ordered by session id, which an
unseen one could win). The candidates' exact totals, and their final order, come from the report's
own statement narrowed to them (the caller's `exact` and `ordered`), so the rows, the ties and the
collation are the full statement's. A session filter is one candidate: its statement narrowed to it
and to the tenants with usage (the index on tenant, session, day), no list read.

Not applicable (None: the caller runs the full statement): a comparison filter (its few events are
read directly), a range of at most SMALL_RANGE_ROWS rows (the full statement reads them sooner),
more than MAX_LISTS lists (many keys × models × days read as days: one statement
per round holds every list), or MAX_ROWS_READ rows read before the bound falls under the n-th
total (flat costs: TA would read nearly every session; no round reads past it, since each session
read is a candidate whose exact total is summed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet

from usage.models import UsageDailyKeyRollup, UsageDailyRollup, UsageMonthlySessionRollup, UsageRollupDelta
from usage.session_months import MonthPlan, month_plan_of_range, session_months_apply
from usage.types import UsageFilter, UsageGroup

FIRST_BATCH = 64  # rows per list in the first round, at least n; doubled every round
MAX_ROWS_READ = 200_000
# Lists read in one statement per round (a UNION ALL of index scans): past this, planning the
# statement and reading a first batch of each costs more than the full statement saves. A tenant's
# 7 days of 20 keys × 3 models are 420 lists; the operator's week of 200 keys falls back.
MAX_LISTS = 500
# Below this many rows in all its lists a range is summed faster by the full statement than in TA's
# rounds, or not much slower: a small range costs at most the full statement's time (report_bench.py
# --session-top --sessions 200000: the last 7 days' first 500 sessions 363 ms by rounds, 90 ms so,
# today's 95 vs 42 ms, but a key filter's top 10 28 vs 131 ms; a 5 M session month 13 s vs 74 ms).
# Counted up to the bound, so asking costs a large range at most that many index entries. 0: TA always.
SMALL_RANGE_ROWS = 100_000
# (sessions, tenants) → each session's exact total over the range (groups netting no request absent).
ExactCosts = Callable[[Collection[str], Collection[int]], dict[str, Decimal]]
# (sessions, tenants, n) → the n largest of those sessions, in the report's order.
OrderedGroups = Callable[[Collection[str], Collection[int], int], list[UsageGroup]]


@dataclass(slots=True)
class _List:
    """One list's rows (a tenant's month, or a (tenant, day, key, model) slice of the daily grain),
    read in (cost DESC, session_id) order in batches from their index; `last` is the last row read."""

    rows: QuerySet[Any]
    last: tuple[Decimal, str] | None = None
    exhausted: bool = False

    @property
    def threshold(self) -> Decimal:
        """The most an unseen session has in this list (nothing once the list is read to its end)."""
        if self.exhausted or self.last is None:
            return Decimal(0)
        return self.last[0]

    def page(self, batch: int) -> QuerySet[Any]:
        """The next `batch` rows as (cost, session)."""
        rows = self.rows
        if self.last is not None:
            cost, session = self.last
            # `<=` seeks in the index; the few rows of the same cost already read are skipped.
            rows = rows.filter(cost_usd__lte=cost).exclude(cost_usd=cost, session_id__lte=session)
        ordered = rows.order_by("-cost_usd", "session_id").values_list("cost_usd", "session_id")
        return ordered[:batch]

    def took(self, got: list[tuple[Any, str]], batch: int) -> list[str]:
        self.exhausted = len(got) < batch
        if got:
            self.last = (Decimal(str(got[-1][0])), got[-1][1])
        return [session for _, session in got]


def _parts_sql(parts: list[QuerySet[Any]]) -> tuple[dict[int, str], list[Any]]:
    """Each part's SQL by its position, and all their parameters in that order; a part that can
    match nothing (EmptyResultSet) is left out."""
    sqls: dict[int, str] = {}
    params: list[Any] = []
    for index, part in enumerate(parts):
        try:
            sql, part_params = part.query.sql_with_params()
        except EmptyResultSet:
            continue
        sqls[index] = sql
        params.extend(part_params)
    return sqls, params


def _read(lists: list[_List], batch: int) -> list[str]:
    """The next batch of every list: on PostgreSQL one statement, each list's page an index scan
    of its own (a UNION ALL, tagged with the list's position); elsewhere (make run's SQLite, whose
    compound statements take no LIMIT per part) a query per list."""
    if connection.vendor != "postgresql":
        return [s for one in lists for s in one.took(list(one.page(batch)), batch)]
    sqls, params = _parts_sql([one.page(batch) for one in lists])
    selects = [f"SELECT {index} AS list_index, * FROM ({sql}) AS part{index}" for index, sql in sqls.items()]
    got: dict[int, list[tuple[Any, str]]] = {index: [] for index in range(len(lists))}
    if selects:
        with connection.cursor() as cursor:
            # Each list's rows in its own order: a UNION ALL promises none (the same columns, so
            # the same collation, as each part's ORDER BY).
            union = " UNION ALL ".join(selects)
            cursor.execute(f"{union} ORDER BY list_index, cost_usd DESC, session_id", params)
            for index, cost, session in cursor.fetchall():
                got[index].append((cost, session))
    return [s for index, one in enumerate(lists) for s in one.took(got[index], batch)]


def _month_end(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


def _plan(usage_filter: UsageFilter, today: dt.date) -> MonthPlan:
    """usage.session_months' plan, or every day of the range where the month grain cannot tell
    (a key or model filter): the same parts usage.selectors sums for the exact totals."""
    if session_months_apply(usage_filter):
        return month_plan_of_range(usage_filter, today=today)
    days = Q(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    return MonthPlan(whole_months=[], days_left_out=Q(pk__in=[]), days=days, reads_days=True)


def rows_of_filter(rows: QuerySet[Any], usage_filter: UsageFilter) -> QuerySet[Any]:
    """Rollup-shaped rows narrowed by the filter's tenant, key and model (not its dates nor its
    session: the session-free grain has none; usage.selectors adds both)."""
    if usage_filter.tenant_id is not None:
        rows = rows.filter(tenant_id=usage_filter.tenant_id)
    if usage_filter.key_id is not None:
        rows = rows.filter(api_key_id=usage_filter.key_id)
    if usage_filter.model is not None:
        rows = rows.filter(model=usage_filter.model)
    return rows


def _tenants(usage_filter: UsageFilter, plan: MonthPlan, seeds: list[tuple[str, int]]) -> list[int]:
    """The filter's tenant, or every tenant with usage in the range's months (the session-free
    grain, a few rows a day, is written with the session grains) or with a delta in range."""
    if usage_filter.tenant_id is not None:
        return [usage_filter.tenant_id]
    found = {tenant for _, tenant in seeds}
    first, last = usage_filter.date_from, usage_filter.date_to
    if plan.whole_months:
        first, last = min(first, min(plan.whole_months)), max(last, _month_end(max(plan.whole_months)))
    days = rows_of_filter(UsageDailyKeyRollup.objects.filter(day__gte=first, day__lte=last), usage_filter)
    found.update(days.values_list("tenant_id", flat=True).distinct())
    return sorted(found)


def _lists(usage_filter: UsageFilter, plan: MonthPlan, tenants: list[int]) -> list[_List] | None:
    """Every tenant's whole months, and every (tenant, day, key, model) slice with usage among the
    days read as days; None past MAX_LISTS."""
    months = UsageMonthlySessionRollup.objects.all()
    lists = [_List(months.filter(tenant_id=t, month=m)) for t in tenants for m in plan.whole_months]
    # Every day of the plan's days part, not only those that can hold usage (plan.reads_days):
    # the full statement sums them all, a day stamped ahead of this clock included.
    if len(lists) <= MAX_LISTS:
        slices = rows_of_filter(UsageDailyKeyRollup.objects.filter(plan.days), usage_filter)
        found = slices.order_by().values_list("tenant_id", "day", "api_key_id", "model").distinct()
        # One past the bound is enough to know it is past.
        for tenant, day, key, model in found[: MAX_LISTS + 1 - len(lists)]:
            rows = UsageDailyRollup.objects.filter(tenant_id=tenant, day=day, api_key_id=key, model=model)
            lists.append(_List(rows))
    return None if len(lists) > MAX_LISTS else lists


def _small(lists: list[_List]) -> bool:
    """Whether the lists hold at most SMALL_RANGE_ROWS rows in all (one statement on PostgreSQL,
    which stops reading at the bound; a query per list elsewhere)."""
    bound = SMALL_RANGE_ROWS + 1
    parts = [one.rows.order_by().values_list("session_id") for one in lists]
    if connection.vendor != "postgresql":
        return sum(part[:bound].count() for part in parts) < bound
    sqls, params = _parts_sql(parts)
    selects = [f"(SELECT 1 FROM ({sql}) AS part{index} LIMIT {bound})" for index, sql in sqls.items()]
    if not selects:
        return True
    with connection.cursor() as cursor:
        union = " UNION ALL ".join(selects)  # each part bounded; so is the whole, read in order
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM ({union}) AS parts LIMIT {bound}) AS b", params)
        (count,) = cursor.fetchone()
    return int(count) < bound


def _delta_sessions(usage_filter: UsageFilter) -> list[tuple[str, int]]:
    deltas = UsageRollupDelta.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    deltas = rows_of_filter(deltas, usage_filter)
    return sorted(set(deltas.values_list("session_id", "tenant_id")))


def _nth_cost(costs: dict[str, Decimal], n: int) -> Decimal | None:
    if len(costs) < n:
        return None
    return sorted(costs.values(), reverse=True)[n - 1]


def session_top_applies(usage_filter: UsageFilter) -> bool:
    """Whether session_top may answer (it may still return None: past MAX_LISTS or MAX_ROWS_READ)."""
    return usage_filter.comparison_id is None


def session_top(
    *, usage_filter: UsageFilter, n: int, today: dt.date, exact: ExactCosts, ordered: OrderedGroups
) -> list[UsageGroup] | None:
    """The n largest sessions of the range as the report orders them, or None where not applicable."""
    if n <= 0 or not session_top_applies(usage_filter):
        return None
    plan = _plan(usage_filter, today)
    seeds = _delta_sessions(usage_filter)
    tenants = _tenants(usage_filter, plan, seeds)
    if usage_filter.session_id is not None:
        return ordered([usage_filter.session_id], tenants, n)
    lists = _lists(usage_filter, plan, tenants)
    if lists is None or (SMALL_RANGE_ROWS > 0 and _small(lists)):
        return None
    seen = {session for session, _ in seeds}
    costs = exact(seen, tenants)
    batch, rows_read = max(n, FIRST_BATCH), 0
    while True:
        active = [one for one in lists if not one.exhausted]
        if not active:  # every list read to its end: every session is a candidate
            break
        if rows_read >= MAX_ROWS_READ:
            return None
        # No round past the bound: every session read is a candidate whose exact total is summed.
        batch = min(batch, max(1, (MAX_ROWS_READ - rows_read) // len(active)))
        read = _read(active, batch)
        rows_read += len(read)
        fresh = set(read) - seen
        seen |= fresh
        costs.update(exact(fresh, tenants))
        nth = _nth_cost(costs, n)
        if nth is not None and nth > sum(one.threshold for one in lists):
            break
        batch *= 2
    cut = _nth_cost(costs, n)
    finalists = [s for s, cost in costs.items() if cut is None or cost >= cut]
    return ordered(finalists, tenants, n)
