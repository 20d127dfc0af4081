"""`manage.py usage_report_bench [--events N]`: how fast the admin usage report page is at N events.

Seeds N usage events (default 1,000,000) for 20 tenants, 200 keys, 50,000 sessions and 8 models
straight into PostgreSQL (INSERT … SELECT over generate_series): --today-events of them (42,000)
since midnight UTC, the others spread evenly over the 29 days before. The days before today are
rolled up (recomputed from their events); today's events get their rollup deltas as the store
writes them (one row per event: the worst case, every event its own session) and are left
unfolded. Then it times the report page as finance opens it (the whole admin view, through
Django's test client, logged in as a superuser): each grouping, and the Top sessions table the
page fetches on its own, with today not folded, then the fold of today's slices, then the page
again with everything folded; then each selector the page calls, one by one. Run it against a
database of its own (scripts/report_bench.py makes and drops one): it adds rows and never
deletes them.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client

from keys.models import ApiKey, Tenant
from usage.admin_report import REPORT_DEFAULT_DAYS
from usage.models import UsageEvent, UsageRollupDelta, UsageRollupStale
from usage.report_page import REPORT_GROUPS_SHOWN, TOP_ROWS, TOP_TABLES
from usage.rollups import usage_rollups_refresh
from usage.selectors import usage_report, usage_spend_by_day, usage_stale_days
from usage.types import GroupBy, UsageFilter

TENANTS, KEYS_PER_TENANT, SESSIONS, DAYS = 20, 10, 50_000, 30
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1", "openai/gpt-4.1-mini",
          "openrouter/meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4-5",
          "gemini/gemini-2.5-flash", "openai/gpt-5"]  # fmt: skip
EVENTS = UsageEvent._meta.db_table
DELTAS = UsageRollupDelta._meta.db_table
STALE = UsageRollupStale._meta.db_table

_SEED_SQL = f"""
INSERT INTO {EVENTS} (request_id, tenant_id, api_key_id, session_id, template_id, model_requested,
    model_served, provider, attempts, prompt_tokens, completion_tokens, cached_tokens,
    tokens_estimated, cost_usd, latency_ms, http_status, error_code, streamed, cancelled,
    provisional, created_at)
SELECT 'bench_' || %(batch)s || '_' || n, k.tenant_id, k.id,
       's' || (n * 7919 %% {SESSIONS}), '', m.model, m.model, split_part(m.model, '/', 1), '[]',
       100 + n %% 900, 20 + n %% 400, 0, false, ((100 + n %% 900) * 0.15 + (20 + n %% 400) * 0.6) / 1e6,
       200 + n %% 1500, CASE WHEN n %% 50 = 0 THEN 502 ELSE 200 END,
       CASE WHEN n %% 50 = 0 THEN 'upstream_error' ELSE '' END, n %% 3 = 0, false, false,
       CASE WHEN n < %(today_events)s
            THEN %(now)s - make_interval(secs => n * %(today_s)s / %(today_events)s)
            ELSE %(midnight)s - make_interval(secs => (n - %(today_events)s + 1) * {DAYS - 1} * 86400.0
                                                      / (%(events)s - %(today_events)s)) END
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n
JOIN (SELECT id, tenant_id, row_number() OVER (ORDER BY id) - 1 AS i FROM {ApiKey._meta.db_table}
      WHERE name LIKE 'bench-%%') k ON k.i = n %% %(keys)s
JOIN (SELECT model, ordinality - 1 AS i FROM unnest(%(models)s::text[]) WITH ORDINALITY model) m
      ON m.i = (n / 7) %% {len(MODELS)}
"""
# Every slice before today marked for a recompute from its events (the mark's default).
_MARK_PAST_SQL = f"""
INSERT INTO {STALE} (day, tenant_id, generation)
SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date, tenant_id, 1 FROM {EVENTS}
WHERE created_at < %(today)s ON CONFLICT (day, tenant_id) DO NOTHING
"""
# Today's events as the store journals them: their deltas, and marks asking for a fold.
_TODAY_DELTAS_SQL = f"""
INSERT INTO {DELTAS} (day, tenant_id, api_key_id, session_id, model, requests, errors, prompt_tokens,
                      completion_tokens, cached_tokens, cost_usd)
SELECT (created_at AT TIME ZONE 'UTC')::date, tenant_id, api_key_id, session_id,
       COALESCE(NULLIF(model_served, ''), model_requested), 1, (http_status >= 400)::int, prompt_tokens,
       completion_tokens, cached_tokens, cost_usd
FROM {EVENTS} WHERE created_at >= %(today)s ORDER BY created_at
"""
_MARK_TODAY_SQL = f"""
INSERT INTO {STALE} (day, tenant_id, generation, recompute)
SELECT DISTINCT day, tenant_id, 1, false FROM {DELTAS} ON CONFLICT (day, tenant_id) DO NOTHING
"""
_EXACT_SQL = f"SELECT count(*), sum(cost_usd) FROM {EVENTS} WHERE created_at >= %s AND created_at < %s"


class Command(BaseCommand):
    help = "Seed N usage events and time the admin usage report page (see the module docstring)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument(
            "--today-events", type=int, default=42_000, help="Of which today's (left unfolded)."
        )
        parser.add_argument("--runs", type=int, default=3, help="Timed page loads per case (median shown).")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL (DATABASE_URL).")
        if UsageEvent.objects.exists():
            raise CommandError("The benchmark seeds an empty database of its own (scripts/report_bench.py).")
        self._seed(options["events"], options["today_events"])
        self.stdout.write(f"ledger: {UsageEvent.objects.count():,} events; {options['runs']} runs each")
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(User.objects.create_superuser("bench-finance", password=None))
        groupings: tuple[GroupBy, ...] = ("day", "tenant", "model", "key", "session_id")
        for folded in (False, True):
            if folded:
                self._fold()
            for group_by in groupings:
                self._time(client, f"group_by={group_by}&stack_by=tenant", options["runs"], folded)
            # The table the page defers to a request of its own (report_page.DEFERRED_TOPS).
            self._time(client, "top=session_id", options["runs"], folded, page="top/")
            self._check_exact()
        self.stdout.write("each selector the page calls (everything folded), median ms:")
        for group_by in groupings:
            self._time_selectors(group_by, options["runs"])

    def _seed(self, events: int, today_events: int) -> None:
        started = time.monotonic()
        with transaction.atomic():
            tenants = Tenant.objects.bulk_create([Tenant(name=f"bench-{n:02d}") for n in range(TENANTS)])
            ApiKey.objects.bulk_create(
                [
                    ApiKey(
                        tenant=t,
                        name=f"bench-{t.pk}-{n}",
                        prefix=f"rsk_bench{n:02d}",
                        key_hash=f"bench-{t.pk}-{n}",
                    )
                    for t in tenants
                    for n in range(KEYS_PER_TENANT)
                ]
            )
        now = dt.datetime.now(dt.UTC)
        today = dt.datetime.combine(now.date(), dt.time.min, tzinfo=dt.UTC)
        batch, step = str(int(time.time())), 200_000
        for start in range(0, events, step):
            with connection.cursor() as cursor:
                cursor.execute(
                    _SEED_SQL,
                    {
                        "batch": batch,
                        "start": start,
                        "stop": min(events, start + step) - 1,
                        "events": events,
                        "today_events": today_events,
                        "now": now,
                        "midnight": today,
                        "today_s": (now - today).total_seconds(),
                        "keys": TENANTS * KEYS_PER_TENANT,
                        "models": MODELS,
                    },
                )
        self.stdout.write(f"seeded {events:,} events in {time.monotonic() - started:.1f}s; rolling up")
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(_MARK_PAST_SQL, {"today": today})
        slices = usage_rollups_refresh()
        with connection.cursor() as cursor:
            cursor.execute(_TODAY_DELTAS_SQL, {"today": today})
            cursor.execute(_MARK_TODAY_SQL)
            cursor.execute("ANALYZE")
        self.stdout.write(
            f"recomputed {slices} past (day, tenant) slices in {time.monotonic() - started:.1f}s; "
            f"today's {UsageRollupDelta.objects.count():,} events left unfolded (one delta each)"
        )

    def _fold(self) -> None:
        deltas = UsageRollupDelta.objects.count()
        started = time.perf_counter()
        slices = usage_rollups_refresh()
        elapsed = time.perf_counter() - started
        self.stdout.write(f"fold: {deltas:,} deltas of {slices} slices folded in {elapsed * 1000:.0f} ms")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    def _check_exact(self) -> None:
        """The page's 30 days summed from rollups and deltas equal the events' own sums."""
        usage_filter = self._last_30_days()
        totals = usage_report(usage_filter=usage_filter, group_by="tenant", limit=1).totals
        start = dt.datetime.combine(usage_filter.date_from, dt.time.min, tzinfo=dt.UTC)
        with connection.cursor() as cursor:
            cursor.execute(_EXACT_SQL, [start, start + dt.timedelta(days=REPORT_DEFAULT_DAYS)])
            events, cost = cursor.fetchone() or (0, 0)
        if (totals.requests, totals.cost_usd) != (events, cost):
            raise CommandError(f"report {totals.requests} / {totals.cost_usd} != events {events} / {cost}")
        self.stdout.write(f"  exact: {events:,} requests, {cost} USD, the same as the events")

    def _last_30_days(self) -> UsageFilter:
        date_to = dt.datetime.now(dt.UTC).date()
        return UsageFilter(
            tenant_id=None, date_from=date_to - dt.timedelta(days=REPORT_DEFAULT_DAYS - 1), date_to=date_to
        )

    def _time_selectors(self, group_by: GroupBy, runs: int) -> None:
        """The page's selector calls one by one (report_page_build's), each timed on its own."""
        usage_filter = self._last_30_days()
        calls: dict[str, Callable[[], object]] = {
            f"main {group_by}": lambda: usage_report(
                usage_filter=usage_filter, group_by=group_by, limit=REPORT_GROUPS_SHOWN
            )
        }
        for top_by, title in TOP_TABLES:
            if top_by != group_by:
                calls[title.lower()] = partial(
                    usage_report, usage_filter=usage_filter, group_by=top_by, limit=TOP_ROWS
                )
        calls["chart"] = partial(usage_spend_by_day, usage_filter=usage_filter, series="tenant")
        calls["stale"] = partial(usage_stale_days, usage_filter=usage_filter)
        timings: list[str] = []
        for name, call in calls.items():
            call()  # warm-up
            runs_ms = []
            for _ in range(runs):
                started = time.perf_counter()
                call()
                runs_ms.append((time.perf_counter() - started) * 1000)
            timings.append(f"{name} {statistics.median(runs_ms):.1f}")
        self.stdout.write(f"  group_by={group_by:<11} " + " · ".join(timings))

    def _time(self, client: Client, query: str, runs: int, folded: bool, page: str = "") -> None:
        url = f"/admin/usage/usagereport/{page}?{query}"  # the default range: the last 30 days
        client.get(url)  # warm-up (plans, caches)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        size = len(response.content)
        label = "folded          " if folded else "today not folded"
        self.stdout.write(
            f"  {label}  {page + query:<36} median {statistics.median(timings):7.1f} ms  "
            f"max {max(timings):7.1f} ms  page {size / 1024:.0f} KiB"
        )
