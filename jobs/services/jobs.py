"""Async job writes: submit, claim (with a lease), renew, finish, cancel, expire."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.ids import new_job_id
from jobs.models import JOB_FINAL, Job, JobStatus, WebhookSecret, WebhookStatus
from keys.types import ResolvedKey
from meshplatform.errors import Conflict

RUN_TASK = "routing.job_run"  # routing runs completions (it composes this app), so by name


def job_submit(
    *,
    key: ResolvedKey,
    request_id: str,
    model: str,
    session_id: str | None,
    request: dict[str, Any],
    webhook_url: str | None,
) -> Job:
    """Store an admitted request as a queued job; the run is enqueued once the row is committed."""
    if webhook_url:
        WebhookSecret.objects.get_or_create(tenant_id=key.tenant_id)  # in admin before the first call
    job = Job.objects.create(
        id=new_job_id(),
        tenant_id=key.tenant_id,
        api_key_id=key.key_id,
        request_id=request_id,
        model=model,
        session_id=session_id,
        request=request,
        created_at=timezone.now(),
        webhook_url=webhook_url or "",
        webhook_status=WebhookStatus.PENDING if webhook_url else WebhookStatus.NONE,
    )
    transaction.on_commit(lambda: job_enqueue(job_id=job.id))
    return job


def job_enqueue(*, job_id: str) -> None:
    current_app.send_task(RUN_TASK, args=[job_id])


@dataclass(frozen=True, slots=True)
class Claim:
    """A run's right to a job: only the run holding the latest attempt may finish it."""

    job: Job
    attempt: int
    cancelled: bool = False


def job_claim(*, job_id: str) -> Claim | None:
    """Take a queued job, or a running one whose lease lapsed (its worker died); None when another
    live run holds it or it is finished. A job cancelled while queued is handed back as
    `cancelled` until its cancellation is recorded (the run records it, once)."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(id=job_id).first()
        if job is None:
            return None
        if job.status == JobStatus.CANCELLED and job.attempts == 0:
            job.attempts = 1  # marks the cancellation as taken up for recording
            job.save(update_fields=["attempts"])
            return Claim(job=job, attempt=1, cancelled=True)
        runnable = job.status == JobStatus.QUEUED or (
            job.status == JobStatus.RUNNING and (job.lease_until is None or job.lease_until < now)
        )
        if not runnable:
            return None
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.lease_until = lease
        job.started_at = job.started_at or now
        job.save(update_fields=["status", "attempts", "lease_until", "started_at"])
        return Claim(job=job, attempt=job.attempts)


def job_lease_renew(*, job_id: str, attempt: int) -> bool:
    """Extend the lease of a live run; False when the job was cancelled or taken over."""
    lease = timezone.now() + dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
    return bool(
        Job.objects.filter(id=job_id, attempts=attempt, status=JobStatus.RUNNING).update(lease_until=lease)
    )


def job_finish(
    *, job_id: str, attempt: int, result: dict[str, Any] | None, error: dict[str, Any] | None
) -> bool:
    """Store the outcome of the run holding `attempt`; False (nothing written) for a stale run."""
    now = timezone.now()
    status = JobStatus.SUCCEEDED if error is None else JobStatus.FAILED
    with transaction.atomic():
        updated = Job.objects.filter(id=job_id, attempts=attempt, status=JobStatus.RUNNING).update(
            status=status,
            result=result,
            error=error,
            completed_at=now,
            lease_until=None,
            expires_at=now + dt.timedelta(seconds=settings.MESH_JOB_RETENTION_S),
        )
        if updated:
            transaction.on_commit(lambda: webhook_enqueue(job_id=job_id))
    return bool(updated)


def webhook_enqueue(*, job_id: str, countdown: float = 0) -> None:
    from jobs.tasks import job_webhook_deliver  # the task module imports these services

    if Job.objects.filter(id=job_id, webhook_status=WebhookStatus.PENDING).exists():
        job_webhook_deliver.apply_async(args=(job_id,), countdown=countdown)


def job_cancel(*, tenant_id: int, job_id: str) -> Job:
    """Cancel a queued or running job (a running one stops at its next lease renewal); 409 once
    finished. A queued job's hold is released and its ledger entry written by the worker."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job_id, tenant_id=tenant_id)
        if job.status in JOB_FINAL:
            if job.status == JobStatus.CANCELLED:
                return job
            raise Conflict(
                f"Job {job.id} is already {job.status}; only queued or running jobs can be cancelled."
            )
        was_running = job.status == JobStatus.RUNNING
        job.status = JobStatus.CANCELLED
        job.completed_at = now
        job.expires_at = now + dt.timedelta(seconds=settings.MESH_JOB_RETENTION_S)
        job.error = {
            "code": "cancelled",
            "message": "The job was cancelled by the client.",
            "param": None,
            "details": None,
            "provider_error": None,
            "retry_after_seconds": None,
        }
        job.save(update_fields=["status", "completed_at", "expires_at", "error"])
        if not was_running:
            transaction.on_commit(lambda: job_enqueue(job_id=job_id))  # records the cancellation
        transaction.on_commit(lambda: webhook_enqueue(job_id=job_id))
    return job


def jobs_expire(*, now: dt.datetime | None = None) -> int:
    """Drop results past their retention: status `expired`, result, error and request cleared."""
    now = now or timezone.now()
    return Job.objects.filter(
        status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED], expires_at__lt=now
    ).update(status=JobStatus.EXPIRED, result=None, error=None, request={})


def jobs_stale_ids(*, now: dt.datetime | None = None, limit: int = 500) -> list[str]:
    """Jobs no live run holds: queued for longer than a lease (their message was lost) or running
    with a lapsed lease (their worker died). The sweeper enqueues them again."""
    now = now or timezone.now()
    lapsed = now - dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
    return list(
        Job.objects.filter(
            Q(status=JobStatus.QUEUED, created_at__lt=lapsed)
            | Q(status=JobStatus.RUNNING, lease_until__lt=now)
            | Q(status=JobStatus.CANCELLED, attempts=0, completed_at__lt=lapsed)
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
