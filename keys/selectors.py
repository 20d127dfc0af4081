"""Reads of tenants and keys."""

from __future__ import annotations

from keys.models import ApiKey
from keys.types import ResolvedKey, SpendCap


def resolved_key_from_model(api_key: ApiKey) -> ResolvedKey:
    tenant = api_key.tenant
    return ResolvedKey(
        key_id=api_key.pk,
        key_prefix=api_key.prefix,
        key_name=api_key.name,
        tenant_id=tenant.pk,
        tenant_name=tenant.name,
        is_active=api_key.is_active,
        revoked=api_key.revoked_at is not None,
        tenant_suspended=tenant.suspended,
        expires_at=api_key.expires_at.timestamp() if api_key.expires_at else None,
        default_model=api_key.default_model,
        allowed_models=tuple(api_key.allowed_models or ()),
        rpm=api_key.rpm,
        rpd=api_key.rpd,
        key_cap=SpendCap(api_key.spend_cap_usd, api_key.spend_cap_period, api_key.hard_cap)
        if api_key.spend_cap_usd is not None
        else None,
        tenant_cap=SpendCap(tenant.spend_cap_usd, tenant.spend_cap_period, tenant.hard_cap)
        if tenant.spend_cap_usd is not None
        else None,
        key_spend_period=api_key.spend_cap_period,
        tenant_spend_period=tenant.spend_cap_period,
    )


def api_key_get_by_hash(*, key_hash: str) -> ResolvedKey | None:
    api_key = ApiKey.objects.select_related("tenant").filter(key_hash=key_hash).first()
    return resolved_key_from_model(api_key) if api_key is not None else None
