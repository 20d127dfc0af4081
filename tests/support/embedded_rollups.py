"""Run by tests/usage/test_rollup_deltas.py in a process of its own on make run's SQLite database:
stores events (duplicates, a stream's provisional entry then its final with another model), and
prints as JSON the report's totals and per-model requests with the deltas unfolded, folded and
after a recompute of today, next to the events' own sums and what is left in the delta journal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402  (after django.setup())
from django.db import connection  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

from keys.services import api_key_create, tenant_create  # noqa: E402
from usage.folding import StaleSlice  # noqa: E402
from usage.models import UsageDailyRollup, UsageEvent, UsageRollupDelta  # noqa: E402
from usage.rollups import rollup_slice_recompute, usage_rollups_refresh  # noqa: E402
from usage.selectors import usage_report, usage_top_groups, usage_top_groups_scanned  # noqa: E402
from usage.store import usage_events_store  # noqa: E402
from usage.types import TokenUsage, UsageEventData, UsageFilter, UsageGroup  # noqa: E402


def main() -> None:
    call_command("migrate", verbosity=0)
    tenant = tenant_create(name="embedded")
    key = api_key_create(tenant=tenant, name="embedded key").api_key

    def event(days_ago: int, **changes: Any) -> UsageEventData:
        base = UsageEventData(
            request_id=f"req_{uuid.uuid4().hex}", tenant_id=tenant.pk, key_id=key.pk,
            model_requested="openai/gpt-4o-mini", model_served="openai/gpt-4o-mini",
            session_id=f"s{days_ago % 3}", started_at=time.time() - days_ago * 86400,
            tokens=TokenUsage(prompt_tokens=10 + days_ago, completion_tokens=3), cost_usd=Decimal("0.25"),
        )  # fmt: skip
        return dataclasses.replace(base, **changes)

    events = [event(days) for days in range(40)]
    usage_events_store(events=events)
    usage_events_store(events=events[:10])  # duplicates
    usage_rollups_refresh()
    provisional = event(0, streamed=True, provisional=True, model_served="", latency_ms=1)
    usage_events_store(events=[provisional])
    final = dataclasses.replace(
        provisional, provisional=False, latency_ms=90, model_served="openai/gpt-4o", cost_usd=Decimal("2")
    )
    usage_events_store(events=[final])
    today = dt.datetime.now(dt.UTC).date()
    usage_filter = UsageFilter(tenant.pk, today - dt.timedelta(days=45), today)

    recent = UsageFilter(tenant.pk, today - dt.timedelta(days=5), today)
    recent_mini = dataclasses.replace(recent, model="openai/gpt-4o-mini")

    def rows(groups: list[UsageGroup]) -> list[tuple[str, str, int]]:
        return [(g.value, str(g.totals.cost_usd), g.totals.requests) for g in groups]

    def report() -> dict[str, Any]:
        by_model = usage_report(usage_filter=usage_filter, group_by="model")
        by_session = usage_report(usage_filter=usage_filter, group_by="session_id")
        return {
            "requests": by_model.totals.requests,
            "cost": str(by_model.totals.cost_usd),
            "models": {group.value: group.totals.requests for group in by_model.groups},
            "session_requests": by_session.totals.requests,
            # Top sessions by the threshold algorithm (a query per list on SQLite) equal the full
            # statement's, over days and with a model filter.
            "top_sessions_exact": all(
                rows(usage_top_groups(usage_filter=f, group_by="session_id", limit=n))
                == rows(usage_top_groups_scanned(usage_filter=f, group_by="session_id", limit=n))
                for f in (recent, recent_mini)
                for n in (1, 2, 5)
            ),
        }

    result: dict[str, Any] = {"vendor": connection.vendor, "unfolded": report()}
    usage_rollups_refresh()
    result["folded"] = report()
    rollup_slice_recompute(stale=StaleSlice(today, tenant.pk, 0, recompute=True))
    result["recomputed"] = report()
    sums = UsageEvent.objects.aggregate(requests=Count("id"), cost=Sum("cost_usd"))
    result["events"] = {"requests": sums["requests"], "cost": str(sums["cost"])}
    result["deltas_left"] = UsageRollupDelta.objects.count()
    result["empty_rollup_rows"] = UsageDailyRollup.objects.filter(requests=0).count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
