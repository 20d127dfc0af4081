"""`manage.py create_api_key --tenant NAME …`: prints the plaintext key alone on its last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys.management.commands.create_tenant import parse_usd
from keys.models import SpendPeriod, Tenant
from keys.services import api_key_create
from meshplatform.commands import AuditedCommand


class Command(AuditedCommand):
    help = "Create an API key for a tenant. The key is shown once and never again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--rpm", type=int, default=None)
        parser.add_argument("--rpd", type=int, default=None)
        parser.add_argument("--spend-cap-usd", default=None)
        parser.add_argument("--spend-cap-period", choices=SpendPeriod.values, default=SpendPeriod.MONTHLY)
        parser.add_argument("--hard-cap", action="store_true", help="Reserve worst-case cost per request.")
        parser.add_argument("--default-model", default="")
        parser.add_argument("--allowed-model", action="append", default=[], help="Repeat for each model.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant named {options['tenant']!r}.")
        for limit in ("rpm", "rpd"):
            if options[limit] is not None and options[limit] < 1:
                raise CommandError(f"--{limit} must be at least 1.")
        created = api_key_create(
            tenant=tenant,
            name=options["name"],
            rpm=options["rpm"],
            rpd=options["rpd"],
            spend_cap_usd=parse_usd(options["spend_cap_usd"]),
            spend_cap_period=options["spend_cap_period"],
            hard_cap=options["hard_cap"],
            default_model=options["default_model"],
            allowed_models=options["allowed_model"],
        )
        self.stdout.write(f"Created key {created.api_key.prefix}… for tenant {tenant.name}; store it now:")
        self.stdout.write(created.plaintext)
