"""Writes to tenants and keys; every change that the hot path caches invalidates the cache on commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from keys.cache import key_cache_invalidate
from keys.models import ApiKey, SpendPeriod, Tenant
from keys.tokens import token_display_prefix, token_generate, token_hash


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
    return Tenant.objects.create(
        name=name, spend_cap_usd=spend_cap_usd, spend_cap_period=spend_cap_period, hard_cap=hard_cap
    )


@transaction.atomic
def tenant_save(*, tenant: Tenant) -> Tenant:
    """Save an edited tenant (admin): its keys carry tenant state in the cache, so all are invalidated."""
    tenant.save()
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
    # A "no such key" may be cached for this hash (someone tried it first): drop it.
    api_keys_invalidate_cached(keys=[api_key])
    return CreatedKey(api_key=api_key, plaintext=plaintext)


@transaction.atomic
def api_key_save(*, api_key: ApiKey) -> ApiKey:
    """Save an edited key (admin): limits, caps, expiry and the active flag apply on the next request."""
    api_key.save()
    api_keys_invalidate_cached(keys=[api_key])
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, at: datetime | None = None) -> ApiKey:
    """Revoke now (403 from every worker on the next request); revoking twice keeps the first time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=at or timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
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
    api_key.refresh_from_db()
    return created


def api_key_delete(*, api_key: ApiKey) -> None:
    with transaction.atomic():
        api_keys_invalidate_cached(keys=[api_key])
        api_key.delete()


def api_keys_invalidate_cached(*, keys: Iterable[ApiKey]) -> None:
    """Call after any change to keys (or their tenant) so workers see it on the next request."""
    hashes = [k.key_hash for k in keys]
    transaction.on_commit(lambda: key_cache_invalidate(hashes))
