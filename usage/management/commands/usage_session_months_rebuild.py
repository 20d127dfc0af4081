"""`manage.py usage_session_months_rebuild`: recompute the monthly session rollup from the daily one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from usage.rollups import session_months_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the monthly per-session rollup (Top sessions, group by session) from the daily "
        "session rollup, in one transaction. Safe while the aggregator runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = session_months_rebuild()
        self.stdout.write(f"monthly session rollup rebuilt: {rows:,} rows")
