"""`manage.py usage_session_top_bench [--sessions N]`: Top sessions and the first page grouped by
session at N sessions in one tenant's month, by the full statement and by the threshold algorithm.

Seeds straight into the rollups (INSERT … SELECT over generate_series, no events): one tenant with
N sessions (default 5,000,000) in last month's session rollup, skewed (cost ~ 1/rank: a few large
sessions, a long tail of ties to the nano-dollar), N/10 in this month's; daily session rows for
last month's first two days (the range's days left out: 1 in 25 sessions, half their month), the
session-free grain a row a day, and 2,000 unfolded deltas today (1 in 10 negative: rewrites). The
range is the 3rd of last month to today (last month whole less two days, this month whole), as a
tenant admin (one tenant) and as the operator (all tenants). Then the ranges read as days: the last
7 days' daily session rows are seeded too (N/20 sessions a day over 2 keys × 2 models, each day's
sessions half the next day's), and Top sessions and the first page are timed over the last 7 days
(last month's days and this month whole, or days only early in a month), today, and the first
range with a key filter and with a model filter (every day of it read as days, 14 lists).
The first page of `GET /v1/usage?group_by=session_id` (100 rows, its count and totals) is timed
for the tenant admin's ranges: usage_report against usage_report_page. Each timing is the median
of --runs,
after a warm-up; both paths' rows are compared for equality first. Run it against a database of
its own (scripts/report_bench.py --session-top makes and drops one).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from keys.models import ApiKey, Tenant
from usage.models import UsageDailyKeyRollup, UsageDailyRollup, UsageMonthlySessionRollup, UsageRollupDelta
from usage.report_page import REPORT_GROUPS_SHOWN, TOP_ROWS
from usage.selectors import (
    usage_report,
    usage_report_page,
    usage_top_groups,
    usage_top_groups_scanned,
    usage_totals,
)
from usage.types import UsageFilter, UsageGroup, UsageReport, UsageTotals

MONTHS = UsageMonthlySessionRollup._meta.db_table
DAILY = UsageDailyRollup._meta.db_table
KEYS = UsageDailyKeyRollup._meta.db_table
DELTAS = UsageRollupDelta._meta.db_table
MODEL = "openai/gpt-4o-mini"
# cost ~ 1/rank over a scrambled rank: skewed, and the tail ties at 9 decimals.
_COST = "round(1000.0 / (1 + (n * 7919 %% %(sessions)s)), 9)"
_MONTH_SQL = f"""
INSERT INTO {MONTHS} (month, tenant_id, session_id, requests, errors, prompt_tokens, completion_tokens,
                      cached_tokens, cost_usd)
SELECT %(month)s, %(tenant)s, 's' || n, 2 + n %% 5, 0, 100, 20, 0, {_COST}
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n
"""
_LEFT_OUT_SQL = f"""
INSERT INTO {DAILY} (day, tenant_id, api_key_id, session_id, model, requests, errors, prompt_tokens,
                     completion_tokens, cached_tokens, cost_usd)
SELECT %(day)s, %(tenant)s, %(key)s, 's' || n, '{MODEL}', 1, 0, 50, 10, 0, round({_COST} / 2, 9)
FROM generate_series(0::bigint, %(sessions)s - 1) AS n WHERE n %% 25 = 0
"""
_KEY_SQL = f"""
INSERT INTO {KEYS} (day, tenant_id, api_key_id, model, requests, errors, prompt_tokens,
                    completion_tokens, cached_tokens, cost_usd)
SELECT d::date, %(tenant)s, %(key)s, '{MODEL}', 1000, 0, 100000, 20000, 0, 1000
FROM generate_series(%(first)s::date, %(today)s::date, '1 day') AS d
"""
_DELTA_SQL = f"""
INSERT INTO {DELTAS} (day, tenant_id, api_key_id, session_id, model, requests, errors, prompt_tokens,
                      completion_tokens, cached_tokens, cost_usd)
SELECT %(today)s, %(tenant)s, %(key)s, 's' || (n * 104729 %% %(sessions)s), '{MODEL}',
       CASE WHEN n %% 10 = 0 THEN 0 ELSE 1 END, 0, 10, 2, 0,
       CASE WHEN n %% 10 = 0 THEN -0.5 ELSE 2.0 + n / 1000.0 END
FROM generate_series(1, 2000) AS n
"""
# The last 7 days in the daily session grain: N/20 sessions a day over 2 keys × 2 models (a
# session's key and model fixed by its number), each day's sessions half of the next day's.
MODEL_2 = "openai/gpt-4o"
_DAYS_SQL = f"""
INSERT INTO {DAILY} (day, tenant_id, api_key_id, session_id, model, requests, errors, prompt_tokens,
                     completion_tokens, cached_tokens, cost_usd)
SELECT %(day)s, %(tenant)s, CASE WHEN n %% 2 = 0 THEN %(key)s ELSE %(key_2)s END, 's' || n,
       CASE WHEN n / 2 %% 2 = 0 THEN '{MODEL}' ELSE '{MODEL_2}' END, 1, 0, 50, 10, 0, {_COST}
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n
"""
_DAYS_KEY_SQL = f"""
INSERT INTO {KEYS} (day, tenant_id, api_key_id, model, requests, errors, prompt_tokens,
                    completion_tokens, cached_tokens, cost_usd)
SELECT %(day)s, %(tenant)s, k, m, 1000, 0, 100000, 20000, 0, 1000
FROM unnest(ARRAY[%(key)s, %(key_2)s]) AS k, unnest(ARRAY['{MODEL}', '{MODEL_2}']) AS m
WHERE NOT (k = %(key)s AND m = '{MODEL}')
"""
DAYS = 7
API_PAGE = 100  # GET /v1/usage's default limit
STEP = 1_000_000


class Command(BaseCommand):
    help = "Seed N sessions in one tenant-month and time the session views both ways (module docstring)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sessions", type=int, default=5_000_000)
        parser.add_argument("--runs", type=int, default=3, help="Timed calls per case (median shown).")
        parser.add_argument(
            "--days-only", action="store_true", help="Only the ranges read as days and the key filter."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL (DATABASE_URL).")
        if UsageMonthlySessionRollup.objects.exists():
            raise CommandError("The benchmark seeds an empty database of its own (scripts/report_bench.py).")
        tenant, key_2 = self._seed(options["sessions"])
        today = dt.datetime.now(dt.UTC).date()
        if not options["days_only"]:
            for scope, tenant_id in (("tenant admin", tenant.pk), ("operator", None)):
                self._compare(scope, self._range(tenant_id), options["runs"])
        week = dt.timedelta(days=DAYS - 1)
        for scope, usage_filter in (
            ("admin, 7 days", UsageFilter(tenant_id=tenant.pk, date_from=today - week, date_to=today)),
            ("operator, 7 d", UsageFilter(tenant_id=None, date_from=today - week, date_to=today)),
            ("admin, today", UsageFilter(tenant_id=tenant.pk, date_from=today, date_to=today)),
            ("admin, a key", replace(self._range(tenant.pk), key_id=key_2.pk)),
            ("admin, model", replace(self._range(tenant.pk), model=MODEL_2)),
        ):
            self._compare(scope, usage_filter, options["runs"])

    @staticmethod
    def _range(tenant_id: int | None) -> UsageFilter:
        today = dt.datetime.now(dt.UTC).date()
        last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        return UsageFilter(tenant_id=tenant_id, date_from=last_month + dt.timedelta(days=2), date_to=today)

    def _seed(self, sessions: int) -> tuple[Tenant, ApiKey]:
        started = time.monotonic()
        tenant = Tenant.objects.create(name="bench-acme")
        Tenant.objects.create(name="bench-globex")  # no usage: the operator's scan skips it
        key = ApiKey.objects.create(tenant=tenant, name="bench", prefix="rsk_bench00", key_hash="bench")
        key_2 = ApiKey.objects.create(tenant=tenant, name="bench 2", prefix="rsk_bench01", key_hash="bench2")
        today = dt.datetime.now(dt.UTC).date()
        last_month = self._range(None).date_from.replace(day=1)
        base: dict[str, int | dt.date] = {
            "tenant": tenant.pk,
            "key": key.pk,
            "key_2": key_2.pk,
            "sessions": sessions,
            "today": today,
        }
        with connection.cursor() as cursor:
            for month, count in ((last_month, sessions), (today.replace(day=1), sessions // 10)):
                for start in range(0, count, STEP):
                    stop = min(count, start + STEP) - 1
                    cursor.execute(_MONTH_SQL, {**base, "month": month, "start": start, "stop": stop})
            for day in (last_month, last_month + dt.timedelta(days=1)):
                cursor.execute(_LEFT_OUT_SQL, {**base, "day": day})
            cursor.execute(_KEY_SQL, {**base, "first": last_month})
            cursor.execute(_DELTA_SQL, base)
            per_day = sessions // 20
            for back in range(DAYS):
                day, start = today - dt.timedelta(days=DAYS - 1 - back), back * per_day // 2
                cursor.execute(_DAYS_SQL, {**base, "day": day, "start": start, "stop": start + per_day - 1})
                cursor.execute(_DAYS_KEY_SQL, {**base, "day": day})
            cursor.execute("ANALYZE")
        self.stdout.write(
            f"seeded {UsageMonthlySessionRollup.objects.count():,} month session rows, "
            f"{UsageDailyRollup.objects.count():,} daily, {UsageRollupDelta.objects.count():,} deltas "
            f"in {time.monotonic() - started:.1f}s"
        )
        return tenant, key_2

    def _compare(self, scope: str, usage_filter: UsageFilter, runs: int) -> None:
        def page_before() -> list[UsageGroup]:  # the page's main table as it was read: window sums
            return usage_report(
                usage_filter=usage_filter, group_by="session_id", limit=REPORT_GROUPS_SHOWN
            ).groups

        def page_after() -> list[UsageGroup]:  # report_page._main_report's session branch
            usage_totals(usage_filter=usage_filter)
            top = usage_top_groups(
                usage_filter=usage_filter, group_by="session_id", limit=REPORT_GROUPS_SHOWN + 1
            )
            return top[:REPORT_GROUPS_SHOWN]

        cases: dict[str, tuple[Callable[[], list[UsageGroup]], Callable[[], list[UsageGroup]]]] = {
            f"top {TOP_ROWS} sessions": (
                lambda: usage_top_groups_scanned(
                    usage_filter=usage_filter, group_by="session_id", limit=TOP_ROWS
                ),
                lambda: usage_top_groups(usage_filter=usage_filter, group_by="session_id", limit=TOP_ROWS),
            ),
            f"group by session, first {REPORT_GROUPS_SHOWN}": (page_before, page_after),
        }
        if usage_filter.tenant_id is not None:  # the API's view: one tenant

            def api(read: Callable[..., UsageReport]) -> Callable[[], list[UsageGroup]]:
                def page() -> list[UsageGroup]:
                    got = read(usage_filter=usage_filter, group_by="session_id", offset=0, limit=API_PAGE)
                    # The count compared with the rows. Not the totals: the seeded session-free
                    # grain is not the sum of the seeded session rows (usage_report_page reads the
                    # former, usage_report the latter); on real events they are equal, which
                    # tests/usage/test_session_top_exactness.py checks through the API.
                    return [UsageGroup(f"count {got.group_count}", UsageTotals()), *got.groups]

                return page

            cases[f"/v1/usage by session, {API_PAGE}"] = (api(usage_report), api(usage_report_page))
        for name, (before, after) in cases.items():
            expected, got = _rows(before()), _rows(after())
            if expected != got:
                pairs = enumerate(zip(expected, got, strict=False))
                index = next((i for i, (want, have) in pairs if want != have), None)
                where = (
                    f"row {index}: {expected[index]} by the full statement, {got[index]} by the other"
                    if index is not None
                    else f"{len(expected)} rows by the full statement, {len(got)} by the other"
                )
                raise CommandError(f"{scope} {name}: the rows differ from the full statement's ({where})")
            self.stdout.write(
                f"  {scope:<13} {name:<29} full statement {_median_ms(before, runs):8.1f} ms   "
                f"threshold algorithm {_median_ms(after, runs):7.1f} ms   (rows equal)"
            )


def _rows(groups: list[UsageGroup]) -> list[tuple[str, object, int]]:
    return [(g.value, g.totals.cost_usd, g.totals.requests) for g in groups]


def _median_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up (plans, caches)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
