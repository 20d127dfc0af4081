"""`manage.py create_tenant NAME [--spend-cap-usd X]`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys.models import SpendPeriod, Tenant
from keys.services import tenant_create
from meshplatform.commands import AuditedCommand


def parse_usd(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation as error:
        raise CommandError(f"Not a USD amount: {value!r}") from error
    if amount < 0:
        raise CommandError("A spend cap cannot be negative.")
    return amount


class Command(AuditedCommand):
    help = "Create a tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--spend-cap-usd", default=None)
        parser.add_argument("--spend-cap-period", choices=SpendPeriod.values, default=SpendPeriod.MONTHLY)
        parser.add_argument("--hard-cap", action="store_true", help="Reserve worst-case cost per request.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("A tenant needs a name.")
        if Tenant.objects.filter(name=name).exists():
            raise CommandError(f"Tenant {name!r} already exists.")
        tenant = tenant_create(
            name=name,
            spend_cap_usd=parse_usd(options["spend_cap_usd"]),
            spend_cap_period=options["spend_cap_period"],
            hard_cap=options["hard_cap"],
        )
        self.stdout.write(f"Created tenant {tenant.name} (id {tenant.pk})")
