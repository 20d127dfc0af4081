"""`manage.py seed_demo`: the demo tenant, an admin login and a fresh demo API key for `make run`."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser
from django.db import transaction
from django.utils import timezone

from keys.models import ApiKey, Tenant
from keys.services import api_key_create, api_keys_invalidate_cached, tenant_create
from meshplatform.commands import AuditedCommand
from routing.catalog import catalog_seed

DEMO_TENANT = "demo"
DEMO_KEY_NAME = "make run demo key"


class Command(AuditedCommand):
    help = (
        "Create the demo tenant and admin if missing, and a fresh demo key (earlier demo keys are revoked)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument("--admin-password", default="")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        catalog_seed()
        tenant = Tenant.objects.filter(name=DEMO_TENANT).first() or tenant_create(name=DEMO_TENANT)
        password = self._ensure_admin(options["admin_username"], options["admin_password"])
        old_keys = list(ApiKey.objects.filter(tenant=tenant, name=DEMO_KEY_NAME, revoked_at__isnull=True))
        ApiKey.objects.filter(pk__in=[k.pk for k in old_keys]).update(revoked_at=timezone.now())
        api_keys_invalidate_cached(keys=old_keys)
        created = api_key_create(tenant=tenant, name=DEMO_KEY_NAME, default_model="openai/gpt-4o-mini")
        self.stdout.write(f"admin login: {options['admin_username']} / {password or '(unchanged)'}")
        self.stdout.write(created.plaintext)

    def _ensure_admin(self, username: str, password: str) -> str:
        """Creates the superuser once; its password is printed only when this run set it."""
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is not None and not password:
            return ""
        password = password or secrets.token_urlsafe(12)
        if user is None:
            user_model.objects.create_superuser(username=username, email="", password=password)
        else:
            user.set_password(password)
            user.save()
        return password
