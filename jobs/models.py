"""Async jobs, uploaded files, batches and their lines; every row belongs to one tenant."""

from __future__ import annotations

import secrets

from django.db import models

from keys.models import ApiKey, Tenant


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


JOB_FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)


class WebhookStatus(models.TextChoices):
    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Job(models.Model):
    """One `async_mode` chat completion: the admitted request, then its result or error envelope.

    `request_id` is the submission's X-Request-Id; the usage event of the run carries it and
    `created_at` as its start (jobs.runner), so the ledger's unique (request_id, created_at) makes a
    re-run after a crash bill nothing twice.
    """

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="jobs")
    request_id = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    model = models.CharField(max_length=200)
    session_id = models.CharField(max_length=256, null=True, blank=True)  # as a request allows
    request = models.JSONField(help_text="The admitted request as the worker runs it.")
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the result is dropped.")
    # Crash safety: a run holds a lease it renews; a lapsed lease lets another worker take over.
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    webhook_url = models.CharField(max_length=2000, blank=True)
    webhook_status = models.CharField(
        max_length=16, choices=WebhookStatus.choices, default=WebhookStatus.NONE
    )
    webhook_attempts = models.PositiveIntegerField(default=0)
    webhook_last_status_code = models.PositiveIntegerField(null=True, blank=True)
    webhook_last_error = models.TextField(blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="jobs_job_tenant_created"),
            models.Index(fields=["status", "lease_until"], name="jobs_job_status_lease"),
        ]

    def __str__(self) -> str:
        return self.id


def new_webhook_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class WebhookSecret(models.Model):
    """The key a tenant's webhook receivers verify signatures with (shown in admin)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"webhook secret of {self.tenant}"


class FilePurpose(models.TextChoices):
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


class StoredFile(models.Model):
    """A file in OpenAI's Files API; its bytes live in Django's storage under `storage_name`."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="files")
    purpose = models.CharField(max_length=32, choices=FilePurpose.choices)
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=500)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="jobs_file_tenant_created")]

    def __str__(self) -> str:
        return self.id


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


BATCH_FINAL = (BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED)


class Batch(models.Model):
    """One OpenAI batch: an input file's lines run through the pipeline, results in two files."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="batches")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="batches")
    endpoint = models.CharField(max_length=100)
    input_file = models.ForeignKey(StoredFile, on_delete=models.SET_NULL, null=True, related_name="+")
    completion_window = models.CharField(max_length=16)
    metadata = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.VALIDATING)
    errors = models.JSONField(null=True, blank=True, help_text="Why the batch failed validation.")
    output_file = models.ForeignKey(
        StoredFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_file = models.ForeignKey(
        StoredFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    runs = models.PositiveIntegerField(default=0, help_text="How many times a worker took the batch up.")

    class Meta:
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="jobs_batch_tenant_created"),
            models.Index(fields=["status", "lease_until"], name="jobs_batch_status_lease"),
        ]

    def __str__(self) -> str:
        return self.id


class LineOutcome(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BatchLine(models.Model):
    """One input line of a batch and its outcome; a finished line is never run again."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    index = models.PositiveIntegerField()
    custom_id = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=16, choices=LineOutcome.choices, default=LineOutcome.PENDING)
    request_id = models.CharField(max_length=40, unique=True, help_text="The line's usage event id.")
    # The output or error file's line, as OpenAI writes it (id, custom_id, response, error).
    result = models.JSONField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "index"], name="jobs_batchline_unique_index")]
        indexes = [models.Index(fields=["batch", "outcome", "index"], name="jobs_line_batch_outcome")]

    def __str__(self) -> str:
        return f"{self.batch_id}#{self.index}"
