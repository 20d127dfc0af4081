"""The usage ledger: one event per request, and the daily rollups reports read."""

from __future__ import annotations

from django.db import models

from keys.models import ApiKey, Tenant


class UsageEvent(models.Model):
    request_id = models.CharField(max_length=40, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    session_id = models.CharField(max_length=256, blank=True, default="")
    template_id = models.CharField(max_length=64, blank=True, default="")
    template_version = models.PositiveIntegerField(null=True, blank=True)
    model_requested = models.CharField(max_length=200, blank=True, default="")
    model_served = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=20, blank=True, default="")
    attempts = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9, default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=40, blank=True, default="")
    streamed = models.BooleanField(default=False)
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "created_at"]),
            models.Index(fields=["tenant", "session_id", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.request_id
