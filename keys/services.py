"""Writes to tenants and keys; every change that the hot path caches invalidates the cache on commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from keys.audit import audit_changes, audit_record, audit_snapshot
from keys.cache import key_cache_invalidate
from keys.models import ApiKey, SpendPeriod, Tenant, TenantMember
from keys.tokens import token_display_prefix, token_generate, token_hash

# What the audit log records of a key and a tenant (never the hash).
KEY_AUDITED = (
    "name", "prefix", "is_active", "expires_at", "revoked_at", "default_model", "allowed_models",
    "rpm", "rpd", "spend_cap_usd", "spend_cap_period", "hard_cap",
)  # fmt: skip
KEY_LIMITS = {"rpm", "rpd", "spend_cap_usd", "spend_cap_period", "hard_cap"}
TENANT_AUDITED = (
    "name", "suspended", "spend_cap_usd", "spend_cap_period", "hard_cap",
    "key_rpm_ceiling", "key_rpd_ceiling", "key_spend_cap_ceiling_usd",
)  # fmt: skip
TENANT_CAPS = {"spend_cap_usd", "spend_cap_period", "hard_cap"}


def _change_action(entity: str, changed: set[str], limits: set[str], limit_word: str) -> str:
    return f"{entity}.{limit_word}" if changed & limits else f"{entity}.edit"


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its plaintext: the only moment the plaintext exists."""

    api_key: ApiKey
    plaintext: str


def tenant_create(
    *,
    name: str,
    spend_cap_usd: Decimal | None = None,
    spend_cap_period: str = SpendPeriod.MONTHLY,
    hard_cap: bool = False,
) -> Tenant:
    with transaction.atomic():
        tenant = Tenant.objects.create(
            name=name, spend_cap_usd=spend_cap_usd, spend_cap_period=spend_cap_period, hard_cap=hard_cap
        )
        audit_record(
            action="tenant.create",
            target=tenant,
            tenant_id=tenant.pk,
            after=audit_snapshot(tenant, TENANT_AUDITED),
        )
    return tenant


@transaction.atomic
def tenant_save(*, tenant: Tenant) -> Tenant:
    """Save a new or edited tenant (admin): its keys carry tenant state in the cache, so all are
    invalidated. The audit log gets the fields that changed."""
    stored = Tenant.objects.filter(pk=tenant.pk).first() if tenant.pk else None
    tenant.save()
    after = audit_snapshot(tenant, TENANT_AUDITED)
    if stored is None:
        audit_record(action="tenant.create", target=tenant, tenant_id=tenant.pk, after=after)
    else:
        before, after = audit_changes(audit_snapshot(stored, TENANT_AUDITED), after)
        action = _change_action("tenant", set(after), TENANT_CAPS, "cap_change")
        if set(after) == {"suspended"}:
            action = "tenant.suspend" if tenant.suspended else "tenant.reinstate"
        audit_record(action=action, target=tenant, tenant_id=tenant.pk, before=before, after=after)
    api_keys_invalidate_cached(keys=ApiKey.objects.filter(tenant=tenant))
    return tenant


def tenant_suspend(*, tenant: Tenant, suspended: bool = True) -> Tenant:
    """Suspend (403 on every key of the tenant within a request) or reinstate a tenant."""
    tenant.suspended = suspended
    return tenant_save(tenant=tenant)


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str = "",
    rpm: int | None = None,
    rpd: int | None = None,
    spend_cap_usd: Decimal | None = None,
    spend_cap_period: str = SpendPeriod.MONTHLY,
    hard_cap: bool = False,
    default_model: str = "",
    allowed_models: list[str] | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    api_key = ApiKey(
        tenant=tenant,
        name=name,
        rpm=rpm,
        rpd=rpd,
        spend_cap_usd=spend_cap_usd,
        spend_cap_period=spend_cap_period,
        hard_cap=hard_cap,
        default_model=default_model,
        allowed_models=allowed_models or [],
        expires_at=expires_at,
    )
    return api_key_issue(api_key=api_key)


@transaction.atomic
def api_key_issue(*, api_key: ApiKey) -> CreatedKey:
    """Give an unsaved key (built by a service or the admin form) a fresh token and save it."""
    plaintext = token_generate()
    api_key.key_hash = token_hash(plaintext)
    api_key.prefix = token_display_prefix(plaintext)
    api_key.save()
    audit_record(
        action="api_key.create",
        target=api_key,
        tenant_id=api_key.tenant_id,
        after=audit_snapshot(api_key, KEY_AUDITED),
    )
    # A "no such key" may be cached for this hash (someone tried it first): drop it.
    api_keys_invalidate_cached(keys=[api_key])
    return CreatedKey(api_key=api_key, plaintext=plaintext)


@transaction.atomic
def api_key_save(*, api_key: ApiKey) -> ApiKey:
    """Save an edited key (admin): limits, caps, expiry and the active flag apply on the next request."""
    stored = ApiKey.objects.filter(pk=api_key.pk).first()
    api_key.save()
    if stored is not None:
        before, after = audit_changes(
            audit_snapshot(stored, KEY_AUDITED), audit_snapshot(api_key, KEY_AUDITED)
        )
        action = _change_action("api_key", set(after), KEY_LIMITS, "limits_change")
        audit_record(action=action, target=api_key, tenant_id=api_key.tenant_id, before=before, after=after)
    api_keys_invalidate_cached(keys=[api_key])
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, at: datetime | None = None) -> ApiKey:
    """Revoke now (403 from every worker on the next request); revoking twice keeps the first time."""
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=at or timezone.now()
    )
    api_key.refresh_from_db(fields=["revoked_at"])
    if revoked:
        audit_record(
            action="api_key.revoke",
            target=api_key,
            tenant_id=api_key.tenant_id,
            before={"revoked_at": None},
            after=audit_snapshot(api_key, ["revoked_at"]),
        )
    api_keys_invalidate_cached(keys=[api_key])
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, grace_seconds: int = 0) -> CreatedKey:
    """A new key with the old one's settings; the old key stops working now or after `grace_seconds`.

    The grace period is an expiry, so it is enforced by the cached entry itself (no job to run).
    """
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    created = api_key_create(
        tenant=old.tenant,
        name=old.name,
        rpm=old.rpm,
        rpd=old.rpd,
        spend_cap_usd=old.spend_cap_usd,
        spend_cap_period=old.spend_cap_period,
        hard_cap=old.hard_cap,
        default_model=old.default_model,
        allowed_models=list(old.allowed_models or []),
        expires_at=old.expires_at,
    )
    if grace_seconds <= 0:
        api_key_revoke(api_key=old)
    else:
        until = timezone.now() + timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at, until) if old.expires_at else until
        api_key_save(api_key=old)
    audit_record(
        action="api_key.rotate",
        target=old,
        tenant_id=old.tenant_id,
        before={"prefix": old.prefix},
        after={"prefix": created.api_key.prefix, "grace_seconds": grace_seconds},
    )
    api_key.refresh_from_db()
    return created


def api_key_delete(*, api_key: ApiKey) -> None:
    with transaction.atomic():
        api_keys_invalidate_cached(keys=[api_key])
        audit_record(
            action="api_key.delete",
            target=api_key,
            tenant_id=api_key.tenant_id,
            before=audit_snapshot(api_key, KEY_AUDITED),
        )
        api_key.delete()


def api_keys_invalidate_cached(*, keys: Iterable[ApiKey]) -> None:
    """Call after any change to keys (or their tenant) so workers see it on the next request."""
    hashes = [k.key_hash for k in keys]
    transaction.on_commit(lambda: key_cache_invalidate(hashes))


@transaction.atomic
def tenant_member_add(*, tenant: Tenant, member: TenantMember) -> TenantMember:
    """Make a staff user an admin of `tenant` (the admin's members inline)."""
    member.tenant = tenant
    member.save()
    audit_record(
        action="tenant.member_add",
        target=tenant,
        tenant_id=tenant.pk,
        after={"member": member.user.get_username()},
    )
    return member


@transaction.atomic
def tenant_member_remove(*, member: TenantMember) -> None:
    audit_record(
        action="tenant.member_remove",
        target=member.tenant,
        tenant_id=member.tenant_id,
        before={"member": member.user.get_username()},
    )
    member.delete()
