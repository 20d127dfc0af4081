"""The top sessions by cost, exact, without reading every session of the range: a threshold algorithm
(Fagin's TA) over each whole month's sessions, read in cost order from their index.

Why it is exact. Where every month of the range is read whole (usage.session_months), a session's
total is its month rows − its rows of the days left out + its deltas not yet folded. Rollup rows sum
event costs, which are never negative, so a session with no delta and seen in no list yet totals at
most the sum of the lists' last costs read. A list is one tenant's month (the operator's view groups
by session id across tenants: the same id counts once per tenant's list). Every session with a delta
is a candidate from the start (a few rows: the writes since the last fold), whatever its sign. Once
the n-th best exact total is strictly above the bound, no unseen session can enter the top n nor tie
its last row (ties are ordered by session id, which an unseen one could win). The candidates' exact
totals, and their final order, come from the report's own statement narrowed to them (the caller's
`exact` and `ordered`), so the rows, the ties and the collation are the full statement's.

Not applicable (None: the caller runs the full statement): a key, model, session or comparison
filter (the month grain has neither key nor model), or a month read as days (a range covering less
than half of a month's usable days: the daily grain is per key × model, so its rows in cost order
bound no session's day total), or more than MAX_ROWS_READ rows read (flat costs: TA would read
nearly every session, one round trip per batch).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal

from usage.models import UsageDailyKeyRollup, UsageMonthlySessionRollup, UsageRollupDelta
from usage.session_months import month_plan_of_range, session_months_apply
from usage.types import UsageFilter, UsageGroup

FIRST_BATCH = 64  # rows per list in the first round, at least n; doubled every round
MAX_ROWS_READ = 200_000
# (sessions, tenants) → each session's exact total over the range (groups netting no request absent).
ExactCosts = Callable[[Collection[str], Collection[int]], dict[str, Decimal]]
# (sessions, tenants, n) → the n largest of those sessions, in the report's order.
OrderedGroups = Callable[[Collection[str], Collection[int], int], list[UsageGroup]]


@dataclass(slots=True)
class _MonthList:
    """One tenant's month rows in (cost DESC, session_id) order, read in batches from
    usage_session_month_cost_idx; `last` is the last row read."""

    tenant_id: int
    month: dt.date
    last: tuple[Decimal, str] | None = None
    exhausted: bool = False

    @property
    def threshold(self) -> Decimal:
        """The most an unseen session has in this list (nothing once the list is read to its end)."""
        if self.exhausted or self.last is None:
            return Decimal(0)
        return self.last[0]

    def read(self, batch: int) -> list[str]:
        rows = UsageMonthlySessionRollup.objects.filter(tenant_id=self.tenant_id, month=self.month)
        if self.last is not None:
            cost, session = self.last
            # `<=` seeks in the index; the few rows of the same cost already read are skipped.
            rows = rows.filter(cost_usd__lte=cost).exclude(cost_usd=cost, session_id__lte=session)
        got = list(rows.order_by("-cost_usd", "session_id").values_list("cost_usd", "session_id")[:batch])
        self.exhausted = len(got) < batch
        if got:
            self.last = (Decimal(str(got[-1][0])), got[-1][1])
        return [session for _, session in got]


def _month_end(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


def _tenants(usage_filter: UsageFilter, months: list[dt.date], seeds: list[tuple[str, int]]) -> list[int]:
    """The filter's tenant, or every tenant with usage in those months (the session-free grain, a
    few rows a day, is written with the month grain) or with a delta in range."""
    if usage_filter.tenant_id is not None:
        return [usage_filter.tenant_id]
    found = {tenant for _, tenant in seeds}
    if months:
        days = UsageDailyKeyRollup.objects.filter(day__gte=min(months), day__lte=_month_end(max(months)))
        found.update(days.values_list("tenant_id", flat=True).distinct())
    return sorted(found)


def _delta_sessions(usage_filter: UsageFilter) -> list[tuple[str, int]]:
    deltas = UsageRollupDelta.objects.filter(day__gte=usage_filter.date_from, day__lte=usage_filter.date_to)
    if usage_filter.tenant_id is not None:
        deltas = deltas.filter(tenant_id=usage_filter.tenant_id)
    return sorted(set(deltas.values_list("session_id", "tenant_id")))


def _nth_cost(costs: dict[str, Decimal], n: int) -> Decimal | None:
    if len(costs) < n:
        return None
    return sorted(costs.values(), reverse=True)[n - 1]


def session_top_applies(usage_filter: UsageFilter, *, today: dt.date) -> bool:
    if usage_filter.comparison_id is not None or not session_months_apply(usage_filter):
        return False
    return not month_plan_of_range(usage_filter, today=today).reads_days


def session_top(
    *, usage_filter: UsageFilter, n: int, today: dt.date, exact: ExactCosts, ordered: OrderedGroups
) -> list[UsageGroup] | None:
    """The n largest sessions of the range as the report orders them, or None where not applicable."""
    if n <= 0 or not session_top_applies(usage_filter, today=today):
        return None
    months = month_plan_of_range(usage_filter, today=today).whole_months
    seeds = _delta_sessions(usage_filter)
    tenants = _tenants(usage_filter, months, seeds)
    lists = [_MonthList(tenant, month) for tenant in tenants for month in months]
    seen = {session for session, _ in seeds}
    costs = exact(seen, tenants)
    batch, rows_read = max(n, FIRST_BATCH), 0
    while True:
        fresh: set[str] = set()
        for month_list in (m for m in lists if not m.exhausted):
            sessions = month_list.read(batch)
            rows_read += len(sessions)
            fresh.update(sessions)
        fresh -= seen
        seen |= fresh
        costs.update(exact(fresh, tenants))
        nth = _nth_cost(costs, n)
        if all(m.exhausted for m in lists) or (nth is not None and nth > sum(m.threshold for m in lists)):
            break
        if rows_read > MAX_ROWS_READ:
            return None
        batch *= 2
    cut = _nth_cost(costs, n)
    finalists = [s for s, cost in costs.items() if cut is None or cost >= cut]
    return ordered(finalists, tenants, n)
