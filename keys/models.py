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
    # Ceilings the platform operator sets for what the tenant's own admins may give a key.
    key_rpm_ceiling = models.PositiveIntegerField(
        null=True, blank=True, help_text="Highest RPM a tenant admin may set on a key; empty = no ceiling."
    )
    key_rpd_ceiling = models.PositiveIntegerField(
        null=True, blank=True, help_text="Highest RPD a tenant admin may set on a key; empty = no ceiling."
    )
    key_spend_cap_ceiling_usd = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Highest spend cap (USD) a tenant admin may set on a key; empty = no ceiling.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("operate_platform", "Can operate the platform: every tenant, the catalog, providers")]

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


class AuditEntry(models.Model):
    """One change made by a person or a process (see keys/audit.py); never updated or deleted."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="The admin user, API key or command that acted.")
    source = models.CharField(max_length=10, help_text="admin, api, command or system.")
    action = models.CharField(max_length=40, help_text="e.g. api_key.create, template.restore, price.change.")
    # No database constraint: an entry outlives whatever it names, and deletes never cascade into it.
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    target_type = models.CharField(max_length=60)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["tenant", "created_at"], name="keys_audit_tenant_idx")]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.action} {self.target_repr} by {self.actor}"
