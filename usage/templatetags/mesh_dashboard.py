"""`{% mesh_dashboard as dashboard %}` for the admin index (see usage/dashboard.py): None for staff who
may not read usage."""

from __future__ import annotations

from typing import Any

from django import template

from usage.admin_report import usage_scope_of
from usage.dashboard import Dashboard, dashboard_build

register = template.Library()


@register.simple_tag(takes_context=True)
def mesh_dashboard(context: dict[str, Any]) -> Dashboard | None:
    request = context.get("request")
    if request is None or not request.user.has_perm("usage.view_usagereport"):
        return None
    scope = usage_scope_of(request)
    return dashboard_build(scope=scope) if scope is not None else None
