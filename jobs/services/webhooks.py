"""Delivering a job's webhook: one try per call, its outcome recorded on the job."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, WebhookSecret, WebhookStatus, new_webhook_secret
from jobs.serializers import job_object
from jobs.webhooks import WebhookRefused, webhook_send


def webhook_secret_of(*, tenant_id: int) -> str:
    secret, _ = WebhookSecret.objects.get_or_create(tenant_id=tenant_id)
    return secret.secret


def webhook_secret_rotate(*, secret: WebhookSecret) -> WebhookSecret:
    secret.secret = new_webhook_secret()
    secret.save(update_fields=["secret"])
    return secret


def job_webhook_attempt(*, job_id: str) -> float | None:
    """Try to deliver the job's webhook once; the delay before the next try, or None when done
    (delivered, refused for good, or out of attempts)."""
    job = Job.objects.filter(id=job_id, webhook_status=WebhookStatus.PENDING).first()
    if job is None:
        return None
    body = orjson.dumps({"type": f"job.{job.status}", "data": job_object(job)})
    job.webhook_attempts += 1
    try:
        result = webhook_send(
            url=job.webhook_url,
            secret=webhook_secret_of(tenant_id=job.tenant_id),
            body=body,
            event_id=f"{job.id}:{job.status}",
        )
    except WebhookRefused as refusal:
        job.webhook_status, job.webhook_last_error = WebhookStatus.FAILED, f"refused: {refusal}"
        job.save(update_fields=["webhook_status", "webhook_attempts", "webhook_last_error"])
        return None
    except ConnectionError as error:  # name resolution failed: maybe transient
        job.webhook_last_status_code, job.webhook_last_error = None, str(error)[:500]
    else:
        job.webhook_last_status_code, job.webhook_last_error = result.status_code, result.error or ""
        if result.delivered:
            job.webhook_status, job.webhook_delivered_at = WebhookStatus.DELIVERED, timezone.now()
    retry_in: float | None = None
    if job.webhook_status == WebhookStatus.PENDING:
        if job.webhook_attempts >= settings.MESH_WEBHOOK_MAX_ATTEMPTS:
            job.webhook_status = WebhookStatus.FAILED
        else:
            retry_in = min(
                settings.MESH_WEBHOOK_BACKOFF_S * 2 ** (job.webhook_attempts - 1),
                settings.MESH_WEBHOOK_MAX_BACKOFF_S,
            )
    job.save(
        update_fields=[
            "webhook_status",
            "webhook_attempts",
            "webhook_last_status_code",
            "webhook_last_error",
            "webhook_delivered_at",
        ]
    )
    return retry_in
