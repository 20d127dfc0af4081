"""The "finance" group: staff who read usage (every tenant) and the report, and change nothing."""

from __future__ import annotations

from typing import Any

FINANCE_GROUP = "finance"
# (app label, codename): view-only on the ledger, the report page, CSV export, all tenants.
FINANCE_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("usage", "view_usageevent"),
    ("usage", "view_usagereport"),
    ("usage", "export_usage_csv"),
    ("usage", "view_all_tenants_usage"),
)


def finance_group_sync(apps: Any) -> None:
    """Create the group (or reset its permissions) from `apps`: the migration's historical
    registry, or `django.apps.apps`. Creates the usage app's permissions first, since Django
    only adds them after all migrations ran."""
    from django.contrib.auth.management import create_permissions

    usage_config = apps.get_app_config("usage")
    if getattr(usage_config, "models_module", None) is None:
        usage_config.models_module = True  # a migration's app stub: create_permissions skips it otherwise
    create_permissions(usage_config, verbosity=0, apps=apps)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=FINANCE_GROUP)
    permissions = [
        permission_model.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in FINANCE_PERMISSIONS
    ]
    group.permissions.set(permissions)
