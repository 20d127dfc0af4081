"""Which rollup rows sum to a range's per-session totals: whole months from the monthly session
grain, less the days of those months outside the range, or the days themselves from the daily grain.

Why months less days: a report's range rarely starts on the 1st (the default is the last 30 days),
and the daily session grain holds about a row per request when sessions are short, so summing the
range's days reads nearly the ledger. A month row already sums every folded day of its month
(usage.folding and usage.rollups keep it so in the transaction that changes a day), so month −
(days of the month outside the range) is exactly the range's folded days, and reads one row per
session of the month plus the few days left out (the deltas not yet folded are days, added by
the caller: usage.selectors).
Each month chooses the smaller side by its days that can hold usage (none after today).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from usage.models import UsageDailyRollup, UsageMonthlySessionRollup
from usage.types import UsageFilter


@dataclass(frozen=True, slots=True)
class SessionRows:
    """Rollup rows whose session sums, `added` minus `subtracted`, are the range's folded part: every
    day of the range, once (the deltas not yet folded are the caller's to add)."""

    added: list[QuerySet[Any]] = field(default_factory=list)
    subtracted: list[QuerySet[Any]] = field(default_factory=list)


def session_months_apply(usage_filter: UsageFilter) -> bool:
    """The month grain has no key or model: a filter on either reads the daily session grain."""
    return usage_filter.key_id is None and usage_filter.model is None and usage_filter.session_id is None


def _months(date_from: dt.date, date_to: dt.date) -> list[tuple[dt.date, dt.date]]:
    """(first day, last day) of every calendar month the range touches."""
    months: list[tuple[dt.date, dt.date]] = []
    start = date_from.replace(day=1)
    while start <= date_to:
        following = (start + dt.timedelta(days=32)).replace(day=1)
        months.append((start, following - dt.timedelta(days=1)))
        start = following
    return months


def _usable_days(first: dt.date, last: dt.date, today: dt.date) -> int:
    """Days of [first, last] that can hold usage: events are stamped at their request, never later."""
    return max(0, (min(last, today) - first).days + 1)


def _days_q(first: dt.date, last: dt.date) -> Q:
    return Q(day__gte=first, day__lte=last) if first <= last else Q(pk__in=[])


@dataclass(frozen=True, slots=True)
class MonthPlan:
    """How a range's months are read: `whole_months` from the month grain less `days_left_out`,
    the others as `days` of the daily grain (`reads_days`: some month is read as days)."""

    whole_months: list[dt.date]
    days_left_out: Q
    days: Q
    reads_days: bool


def month_plan_of_range(usage_filter: UsageFilter, *, today: dt.date) -> MonthPlan:
    """Each month of the range whole where that reads fewer rows (its days that can hold usage)."""
    whole_months: list[dt.date] = []
    days, days_left_out = Q(pk__in=[]), Q(pk__in=[])
    reads_days = False
    for first, last in _months(usage_filter.date_from, usage_filter.date_to):
        inside_from, inside_to = max(first, usage_filter.date_from), min(last, usage_filter.date_to)
        left_out = _usable_days(first, inside_from - dt.timedelta(days=1), today) + _usable_days(
            inside_to + dt.timedelta(days=1), last, today
        )
        if left_out < _usable_days(inside_from, inside_to, today):
            whole_months.append(first)
            days_left_out |= _days_q(first, inside_from - dt.timedelta(days=1))
            days_left_out |= _days_q(inside_to + dt.timedelta(days=1), last)
        else:
            days |= _days_q(inside_from, inside_to)
            reads_days = reads_days or _usable_days(inside_from, inside_to, today) > 0
    return MonthPlan(whole_months, days_left_out, days, reads_days)


def session_rows_of_range(
    usage_filter: UsageFilter, *, today: dt.date, narrow: Q | None = None
) -> SessionRows:
    """The rollup rows of the filter's range and tenant, months whole where that reads fewer rows;
    `narrow` (a session and tenant filter) applies to every part."""
    plan = month_plan_of_range(usage_filter, today=today)
    daily = UsageDailyRollup.objects.all()
    months = UsageMonthlySessionRollup.objects.filter(month__in=plan.whole_months)
    if usage_filter.tenant_id is not None:
        daily = daily.filter(tenant_id=usage_filter.tenant_id)
        months = months.filter(tenant_id=usage_filter.tenant_id)
    if narrow is not None:
        daily, months = daily.filter(narrow), months.filter(narrow)
    rows = SessionRows()
    if plan.whole_months:
        # A month row sums exactly its folded days (usage.folding updates both in one transaction).
        rows.added.append(months)
        rows.subtracted.append(daily.filter(plan.days_left_out))
    rows.added.append(daily.filter(plan.days))
    return rows
