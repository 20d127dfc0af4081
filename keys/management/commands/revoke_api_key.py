"""`manage.py revoke_api_key PREFIX`: revoke a key by its display prefix (403 from the next request)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys.models import ApiKey
from keys.services import api_key_revoke
from meshplatform.commands import AuditedCommand


def key_by_prefix(prefix: str) -> ApiKey:
    matches = list(ApiKey.objects.filter(prefix__startswith=prefix)[:2])
    if not matches:
        raise CommandError(f"No key has the prefix {prefix!r}.")
    if len(matches) > 1:
        raise CommandError(f"More than one key has the prefix {prefix!r}; give more of it.")
    return matches[0]


class Command(AuditedCommand):
    help = "Revoke an API key, identified by its display prefix (rsk_…)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = api_key_revoke(api_key=key_by_prefix(options["prefix"]))
        self.stdout.write(f"Revoked key {api_key.prefix}… at {api_key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
