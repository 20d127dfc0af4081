"""`manage.py usage_report_bench [--events N]`: how fast the admin usage report page is at N events.

Seeds N usage events (default 1,000,000) for 20 tenants, 200 keys, 50,000 sessions and 8 models
straight into PostgreSQL (INSERT … SELECT over generate_series), one a second back from now (a
million span the last 11.6 days; past 30 days the clock wraps), rolls them up, then times the
report page as finance opens it (the whole admin view, through Django's test client, logged in
as a superuser): each grouping, and the Top sessions table the page fetches on its own, once with
every slice rolled up and once with today's slices stale (read from their events, as in the
seconds after requests); then each selector the page calls, one by one. Run it against a
database of its own (DATABASE_URL=…/mesh_report_bench): it adds rows and never deletes them.
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
from usage.models import UsageEvent, UsageRollupStale
from usage.report_page import REPORT_GROUPS_SHOWN, TOP_ROWS, TOP_TABLES
from usage.rollups import usage_rollups_refresh
from usage.selectors import usage_report, usage_spend_by_day, usage_stale_days
from usage.types import GroupBy, UsageFilter

TENANTS, KEYS_PER_TENANT, SESSIONS, DAYS = 20, 10, 50_000, 30
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1", "openai/gpt-4.1-mini",
          "openrouter/meta-llama/llama-3.3-70b-instruct", "anthropic/claude-sonnet-4-5",
          "gemini/gemini-2.5-flash", "openai/gpt-5"]  # fmt: skip
EVENTS = UsageEvent._meta.db_table

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
       now() - ((n %% ({DAYS} * 86400)) || ' seconds')::interval
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS n
JOIN (SELECT id, tenant_id, row_number() OVER (ORDER BY id) - 1 AS i FROM {ApiKey._meta.db_table}
      WHERE name LIKE 'bench-%%') k ON k.i = n %% %(keys)s
JOIN (SELECT model, ordinality - 1 AS i FROM unnest(%(models)s::text[]) WITH ORDINALITY model) m
      ON m.i = (n / 7) %% {len(MODELS)}
"""


class Command(BaseCommand):
    help = "Seed N usage events and time the admin usage report page (see the module docstring)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--runs", type=int, default=5, help="Timed page loads per case (median shown).")
        parser.add_argument("--skip-seed", action="store_true", help="Reuse the events seeded before.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL (DATABASE_URL).")
        if not options["skip_seed"]:
            self._seed(options["events"])
        else:  # a run before left today's slices stale: "rolled up" is timed rolled up
            usage_rollups_refresh()
        total = UsageEvent.objects.count()
        self.stdout.write(f"ledger: {total:,} events; timing the report page ({options['runs']} runs each)")
        client = Client(HTTP_HOST="127.0.0.1")
        user = User.objects.filter(username="bench-finance").first() or User.objects.create_superuser(
            "bench-finance", password=None
        )
        client.force_login(user)
        groupings: tuple[GroupBy, ...] = ("day", "tenant", "model", "key", "session_id")
        for stale in (False, True):
            if stale:
                self._mark_today_stale()
            for group_by in groupings:
                self._time(client, f"group_by={group_by}&stack_by=tenant", options["runs"], stale)
            # The table the page defers to a request of its own (report_page.DEFERRED_TOPS).
            self._time(client, "top=session_id", options["runs"], stale, page="top/")
        self.stdout.write("each selector the page calls (with today's tail), median ms:")
        for group_by in groupings:
            self._time_selectors(group_by, options["runs"])

    def _seed(self, events: int) -> None:
        started = time.monotonic()
        with transaction.atomic():
            tenants = Tenant.objects.bulk_create(
                [Tenant(name=f"bench-{n:02d}") for n in range(TENANTS)], ignore_conflicts=True
            )
            tenants = list(Tenant.objects.filter(name__startswith="bench-"))
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
                ],
                ignore_conflicts=True,
            )
        keys = ApiKey.objects.filter(name__startswith="bench-").count()
        batch, step = str(int(time.time())), 200_000
        for start in range(0, events, step):
            with connection.cursor() as cursor:
                cursor.execute(
                    _SEED_SQL,
                    {
                        "batch": batch,
                        "start": start,
                        "stop": min(events, start + step) - 1,
                        "keys": keys,
                        "models": MODELS,
                    },
                )
        self.stdout.write(f"seeded {events:,} events in {time.monotonic() - started:.1f}s; rolling up")
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {UsageRollupStale._meta.db_table} (day, tenant_id, generation) "
                f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date, tenant_id, 1 FROM {EVENTS} "
                "ON CONFLICT (day, tenant_id) DO NOTHING"
            )
        slices = usage_rollups_refresh()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(f"rolled up {slices} (day, tenant) slices in {time.monotonic() - started:.1f}s")

    def _mark_today_stale(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {UsageRollupStale._meta.db_table} (day, tenant_id, generation) "
                "SELECT (now() AT TIME ZONE 'UTC')::date, id, 1 FROM keys_tenant ON CONFLICT DO NOTHING"
            )
        stale_events = UsageEvent.objects.filter(
            created_at__date=time.strftime("%Y-%m-%d", time.gmtime())
        ).count()
        self.stdout.write(f"today's slices marked stale: the tail holds {stale_events:,} events")

    def _time_selectors(self, group_by: GroupBy, runs: int) -> None:
        """The page's selector calls one by one (report_page_build's), each timed on its own."""
        today = time.gmtime()
        date_to = dt.date(today.tm_year, today.tm_mon, today.tm_mday)
        usage_filter = UsageFilter(
            tenant_id=None, date_from=date_to - dt.timedelta(days=REPORT_DEFAULT_DAYS - 1), date_to=date_to
        )
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

    def _time(self, client: Client, query: str, runs: int, stale: bool, page: str = "") -> None:
        url = f"/admin/usage/usagereport/{page}?{query}"  # the default range: the last 30 days
        client.get(url)  # warm-up (plans, caches)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        size = len(response.content)
        label = "with today's tail" if stale else "rolled up       "
        self.stdout.write(
            f"  {label}  {page + query:<36} median {statistics.median(timings):7.1f} ms  "
            f"max {max(timings):7.1f} ms  page {size / 1024:.0f} KiB"
        )
