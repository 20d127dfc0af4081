"""`manage.py rotate_api_key PREFIX [--grace-seconds N]`: prints the new plaintext key on its last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys.management.commands.revoke_api_key import key_by_prefix
from keys.services import api_key_rotate
from meshplatform.commands import AuditedCommand


class Command(AuditedCommand):
    help = "Replace an API key with a new one of the same settings; the old one stops after the grace period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")
        parser.add_argument("--grace-seconds", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace_seconds"] < 0:
            raise CommandError("--grace-seconds cannot be negative.")
        old = key_by_prefix(options["prefix"])
        created = api_key_rotate(api_key=old, grace_seconds=options["grace_seconds"])
        ends = "now" if options["grace_seconds"] == 0 else f"in {options['grace_seconds']}s"
        self.stdout.write(f"Rotated {old.prefix}… (old key stops {ends}); the new key, store it now:")
        self.stdout.write(created.plaintext)
