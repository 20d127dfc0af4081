"""Tenants and their API keys (stored as a SHA-256 hash and a display prefix only)."""

from __future__ import annotations

from django.db import models


class SpendPeriod(models.TextChoices):
    LIFETIME = "lifetime", "Lifetime"
    MONTHLY = "monthly", "Monthly (calendar UTC)"
    DAILY = "daily", "Daily (calendar UTC)"


class Tenant(models.Model):
    name = models.CharField(max_length=100, unique=True)
    suspended = models.BooleanField(default=False)
    spend_cap_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    spend_cap_period = models.CharField(
        max_length=10, choices=SpendPeriod.choices, default=SpendPeriod.MONTHLY
    )
    hard_cap = models.BooleanField(
        default=False, help_text="Reserve each request's worst-case cost before calling upstream."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="Display prefix; the key itself is never stored.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    default_model = models.CharField(max_length=200, blank=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model ids this key may use; empty means any."
    )
    rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty = unlimited."
    )
    rpd = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per day; empty = unlimited.")
    spend_cap_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    spend_cap_period = models.CharField(
        max_length=10, choices=SpendPeriod.choices, default=SpendPeriod.MONTHLY
    )
    hard_cap = models.BooleanField(
        default=False, help_text="Reserve each request's worst-case cost before calling upstream."
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.prefix}…)"


class TenantMember(models.Model):
    """A staff user who administers one tenant in Django admin (and sees nothing of the others)."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="tenant_membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} → {self.tenant}"
