"""Typed values the keys app hands to the rest of the gateway."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from meshplatform.errors import Forbidden


@dataclass(frozen=True, slots=True)
class SpendCap:
    """A cap on spend in USD over a calendar period, soft (402 once reached) or hard (reserved)."""

    usd: Decimal
    period: str
    hard: bool


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """Everything the hot path needs about a key and its tenant, cacheable as one Redis value."""

    key_id: int
    key_prefix: str
    key_name: str
    tenant_id: int
    tenant_name: str
    is_active: bool
    revoked: bool
    tenant_suspended: bool
    expires_at: float | None
    default_model: str
    allowed_models: tuple[str, ...]
    rpm: int | None
    rpd: int | None
    key_cap: SpendCap | None
    tenant_cap: SpendCap | None
    # Spend is counted per period even without a cap, so a cap set later starts from the truth.
    key_spend_period: str = "monthly"
    tenant_spend_period: str = "monthly"

    @property
    def soft_capped(self) -> bool:
        """Whether the key or its tenant counts expected cost in flight against a soft cap."""
        caps = (self.key_cap, self.tenant_cap)
        return any(cap is not None and not cap.hard for cap in caps)

    @property
    def hard_capped(self) -> bool:
        """Whether the key or its tenant reserves worst-case cost before each upstream call."""
        return bool((self.key_cap and self.key_cap.hard) or (self.tenant_cap and self.tenant_cap.hard))

    def ensure_usable(self, now: float | None = None) -> None:
        """Raise 403 for a key that is valid but not current."""
        if self.revoked:
            raise Forbidden("This API key has been revoked.")
        if not self.is_active:
            raise Forbidden("This API key is inactive.")
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            raise Forbidden("This API key has expired.")
        if self.tenant_suspended:
            raise Forbidden("This tenant is suspended.")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for cap in ("key_cap", "tenant_cap"):
            if data[cap] is not None:
                data[cap]["usd"] = str(data[cap]["usd"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedKey:
        caps = {
            name: SpendCap(usd=Decimal(raw["usd"]), period=raw["period"], hard=raw["hard"])
            if raw is not None
            else None
            for name, raw in ((c, data[c]) for c in ("key_cap", "tenant_cap"))
        }
        return cls(
            **{**data, **caps, "allowed_models": tuple(data["allowed_models"])},
        )
