"""The platform's three admin roles as Django groups (created by migration routing/0003_roles).

- platform operator: everything — tenants and their members and ceilings, every key and template,
  the model catalog and its prices, users, the usage of every tenant, the audit log.
- tenant admin: keys, templates, limits and caps of the one tenant they are a member of
  (`TenantMember`), within the ceilings the operator set on the tenant; their tenant's usage,
  report, CSV and audit log. Membership, not the group, decides which tenant they see.
- finance: read-only usage of every tenant, the report and its CSV (see usage/roles.py).

Permissions are named as (app label, codename) strings, so this module imports no other app.
"""

from __future__ import annotations

from typing import Any

PLATFORM_OPERATOR_GROUP = "platform operator"
TENANT_ADMIN_GROUP = "tenant admin"
FINANCE_GROUP = "finance"


def _crud(app: str, model: str) -> list[tuple[str, str]]:
    return [(app, f"{action}_{model}") for action in ("add", "change", "delete", "view")]


_USAGE_READ = [
    ("usage", "view_usageevent"),
    ("usage", "view_usagereport"),
    ("usage", "export_usage_csv"),
]
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    PLATFORM_OPERATOR_GROUP: [
        ("keys", "operate_platform"),
        *_crud("keys", "tenant"),
        *_crud("keys", "tenantmember"),
        *_crud("keys", "apikey"),
        ("keys", "view_auditentry"),
        *_crud("templates_app", "prompttemplate"),
        ("templates_app", "view_prompttemplateversion"),
        *_crud("routing", "catalogmodel"),
        *_USAGE_READ,
        ("usage", "view_all_tenants_usage"),
        ("auth", "view_user"),
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "view_group"),
    ],
    TENANT_ADMIN_GROUP: [
        ("keys", "view_tenant"),
        *_crud("keys", "apikey"),
        ("keys", "view_auditentry"),
        *_crud("templates_app", "prompttemplate"),
        ("templates_app", "view_prompttemplateversion"),
        ("routing", "view_catalogmodel"),
        *_USAGE_READ,
    ],
    FINANCE_GROUP: [*_USAGE_READ, ("usage", "view_all_tenants_usage")],
}


def roles_sync(apps: Any) -> None:
    """Create the groups (or reset their permissions) from `apps`: a migration's historical registry or
    `django.apps.apps`. Creates the apps' permissions first: Django adds them only after all migrations."""
    from django.contrib.auth.management import create_permissions

    for label in {app for permissions in ROLE_PERMISSIONS.values() for app, _ in permissions}:
        config = apps.get_app_config(label)
        if getattr(config, "models_module", None) is None:
            config.models_module = True  # a migration's app stub: create_permissions skips it otherwise
        create_permissions(config, verbosity=0, apps=apps)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(
            [
                permission_model.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in wanted
            ]
        )
