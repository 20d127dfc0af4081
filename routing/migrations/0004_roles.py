"""The three admin roles (platform operator, tenant admin, finance): see keys/roles.py.

Here, in the app that composes the others, because the roles hold permissions of every app."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_roles(apps: Any, schema_editor: Any) -> None:
    from keys.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0003_provider_prices"),
        ("keys", "0003_audit_roles_ceilings"),
        ("templates_app", "0001_initial"),
        ("usage", "0005_event_provisional"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
