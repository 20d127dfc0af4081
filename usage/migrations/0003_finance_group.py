"""Creates the "finance" group with read-only access to usage (see usage/roles.py)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_finance_group(apps: Any, schema_editor: Any) -> None:
    from usage.roles import finance_group_sync

    finance_group_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0002_ledger_rollups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_finance_group, migrations.RunPython.noop)]
