"""`manage.py ledger_partitions [--ensure] [--drop-expired [--months N]]`: the ledger's monthly
partitions for operators (what beat's usage.ledger_partitions task does, on demand).

Without an action it lists the partitions with their row estimates and the retention horizon.
`--drop-expired` drops every month that ended N whole months ago or more (default
MESH_LEDGER_RETENTION_MONTHS); the rollups of those days are kept, the drop is audited.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import connection

from meshplatform.commands import AuditedCommand
from usage.partitions import (
    ledger_partitioned,
    ledger_partitions,
    ledger_partitions_drop_expired,
    ledger_partitions_ensure,
)
from usage.retention import retention_horizon


class Command(AuditedCommand):
    help = "List, create ahead (--ensure) or drop past retention (--drop-expired) the ledger's partitions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure", action="store_true", help="Create the coming months' partitions.")
        parser.add_argument("--drop-expired", action="store_true", help="Drop months past retention.")
        parser.add_argument(
            "--months",
            type=int,
            default=None,
            help="Retention in months for --drop-expired (default MESH_LEDGER_RETENTION_MONTHS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not ledger_partitioned():
            raise CommandError("The ledger is not partitioned here: partitions need PostgreSQL.")
        months = options["months"]
        if months is not None and months < 1:
            raise CommandError("--months must be at least 1.")
        if months is not None and not options["drop_expired"]:
            raise CommandError("--months goes with --drop-expired.")
        if options["ensure"]:
            created = ledger_partitions_ensure()
            self.stdout.write(f"created: {', '.join(created) or 'none (all there already)'}")
        if options["drop_expired"]:
            retention = settings.MESH_LEDGER_RETENTION_MONTHS if months is None else months
            if retention <= 0:
                raise CommandError("MESH_LEDGER_RETENTION_MONTHS is 0 (keep everything): pass --months N.")
            dropped_all = ledger_partitions_drop_expired(months=retention)
            if not dropped_all:
                self.stdout.write(f"dropped: none (no month ended {retention} whole months ago or more)")
            for dropped in dropped_all:
                self.stdout.write(
                    f"dropped {dropped.name}: {dropped.events} events, {dropped.cost_usd} USD "
                    "(their rollups kept)"
                )
        if not options["ensure"] and not options["drop_expired"]:
            self._list()

    def _list(self) -> None:
        with connection.cursor() as cursor:
            for partition in ledger_partitions():
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [partition.name])
                row = cursor.fetchone()
                rows = max(row[0], 0) if row else 0
                span = "DEFAULT" if partition.start is None else f"{partition.start:%Y-%m}"
                self.stdout.write(f"{partition.name}  {span}  ~{rows} rows")
        horizon = retention_horizon()
        self.stdout.write(f"retention horizon: {horizon.date() if horizon else 'none (nothing dropped)'}")
