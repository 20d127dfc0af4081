"""`manage.py usage_rollups_recompute --from DAY --to DAY [--tenant NAME]`: recompute rollups from events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from keys.models import Tenant
from usage.rollups import usage_rollups_recompute_range


class Command(BaseCommand):
    help = (
        "Recompute the daily rollups (and the months' session sums) of every day in the range whole "
        "from the events, consuming their deltas: the repair path, should the rollups ever disagree "
        "with the ledger. One (day, tenant) per transaction; safe while the gateway and the aggregator "
        "run (a flush writing to the day being recomputed waits for it, a second or so for a big day). "
        "Days whose events retention dropped are left as they are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="date_from", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--to", dest="date_to", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--tenant", help="One tenant by name (default: every tenant).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.order_by("pk")
        if options["tenant"] is not None:
            tenants = tenants.filter(name=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant named {options['tenant']!r}")
        if options["date_from"] > options["date_to"]:
            raise CommandError("--from is after --to")
        slices = usage_rollups_recompute_range(
            date_from=options["date_from"],
            date_to=options["date_to"],
            tenant_ids=list(tenants.values_list("pk", flat=True)),
        )
        self.stdout.write(f"recomputed {slices:,} (day, tenant) slices from their events")
