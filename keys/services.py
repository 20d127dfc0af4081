"""Writes to tenants and keys; every change that the hot path caches invalidates the cache on commit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

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
) -> CreatedKey:
    plaintext = token_generate()
    digest = token_hash(plaintext)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=token_display_prefix(plaintext),
        key_hash=digest,
        rpm=rpm,
        rpd=rpd,
        spend_cap_usd=spend_cap_usd,
        spend_cap_period=spend_cap_period,
        hard_cap=hard_cap,
        default_model=default_model,
        allowed_models=allowed_models or [],
    )
    transaction.on_commit(lambda: key_cache_invalidate([digest]))
    return CreatedKey(api_key=api_key, plaintext=plaintext)


def api_keys_invalidate_cached(*, keys: list[ApiKey]) -> None:
    """Call after any change to keys (or their tenant) so workers see it on the next request."""
    hashes = [k.key_hash for k in keys]
    transaction.on_commit(lambda: key_cache_invalidate(hashes))
