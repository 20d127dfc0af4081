"""Admin login failures and django-axes lockouts, written to the audit log (keys/audit.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from keys.audit import audit_record
from keys.models import TenantMember


def _address(request: Any) -> str:
    return str(
        getattr(request, "axes_ip_address", None) or (request.META.get("REMOTE_ADDR") if request else "")
    )


def _tenant_of(username: str) -> int | None:
    """A tenant admin's failures show in their tenant's audit log."""
    member = TenantMember.objects.filter(user__username=username).values_list("tenant_id", flat=True).first()
    return member


def _record(action: str, username: str, request: Any, **after: Any) -> None:
    user = get_user_model().objects.filter(username=username).first()
    audit_record(
        action=action,
        target_type="auth.user",
        target_id=str(user.pk) if user else "",
        target_repr=username[:150],
        tenant_id=_tenant_of(username) if user else None,
        after={"address": _address(request), **after},
    )


def on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    _record("admin.login_failed", str(credentials.get("username", ""))[:150], request)


def on_locked_out(sender: Any, request: Any, username: str | None, ip_address: str, **kwargs: Any) -> None:
    from django.conf import settings

    _record(
        "admin.lockout",
        (username or "")[:150],
        request,
        failures=settings.AXES_FAILURE_LIMIT,
        cool_off_hours=settings.AXES_COOLOFF_TIME,
    )
