"""The audit log: who changed a key, a limit or cap, a template, a price or a tenant, with before/after.

Written by the services (never by admin code), so the admin, the API and the management commands
leave the same entries; the actor comes from `meshplatform.actors` (set by each entry point).
It lives in `keys`, the app every other app may import (STYLE.md: `keys` imports no other app),
so templates_app and routing record through it; entries name their target by type and id rather
than by foreign key. Append-only: a PostgreSQL trigger refuses UPDATE and DELETE (migration 0004).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.db import models

from keys.models import AuditEntry
from meshplatform.actors import actor_current

JSONValue = Any


def audit_value(value: Any) -> JSONValue:
    """A JSON-safe, exact rendering: Decimals and datetimes as strings, models as their pk."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # 0.150000 → "0.15", 50 → "50" (never "5E+1")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, (list, tuple)):
        return [audit_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): audit_value(v) for k, v in value.items()}
    return value


def audit_snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, JSONValue]:
    return {name: audit_value(getattr(obj, name)) for name in fields}


def audit_changes(
    before: Mapping[str, JSONValue], after: Mapping[str, JSONValue]
) -> tuple[dict[str, JSONValue], dict[str, JSONValue]]:
    """Only the fields that differ, on both sides."""
    changed = [name for name in after if before.get(name) != after.get(name)]
    return {n: before.get(n) for n in changed}, {n: after[n] for n in changed}


def audit_record(
    *,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    tenant_id: int | None,
    before: Mapping[str, JSONValue] | None = None,
    after: Mapping[str, JSONValue] | None = None,
) -> AuditEntry | None:
    """Append one entry (call inside the service's transaction: it commits or rolls back with the
    change). An edit that changes nothing (before == after) records nothing."""
    if before is not None and after is not None and dict(before) == dict(after):
        return None
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
    actor = actor_current()
    return AuditEntry.objects.create(
        actor=actor.name[:150],
        source=actor.source,
        action=action,
        tenant_id=tenant_id,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr[:200],
        before=audit_value(dict(before)) if before is not None else None,
        after=audit_value(dict(after)) if after is not None else None,
    )
