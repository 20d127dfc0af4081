"""Celery tasks of the jobs app that need no completion: webhooks, expiry, the stale-work sweep.
(Running a job or a batch is routing's: `routing.job_run`, `routing.batch_run`.)"""

from __future__ import annotations

from celery import current_app, shared_task

from jobs.services.batches import batches_stale_ids
from jobs.services.files import files_expire
from jobs.services.jobs import jobs_expire, jobs_stale_ids
from jobs.services.webhooks import job_webhook_attempt


@shared_task(name="jobs.webhook_deliver", ignore_result=True, acks_late=True)
def job_webhook_deliver(job_id: str) -> None:
    """One delivery try; the next one is scheduled with exponential backoff until it succeeds."""
    retry_in = job_webhook_attempt(job_id=job_id)
    if retry_in is not None:
        job_webhook_deliver.apply_async(args=(job_id,), countdown=retry_in)


@shared_task(name="jobs.sweep", ignore_result=True)
def jobs_sweep() -> dict[str, int]:
    """On beat: re-enqueue work no live run holds (a dead worker's, a lost message's) and expire
    results past their retention. Duplicate deliveries are harmless: runs claim a lease first."""
    stale_jobs = jobs_stale_ids()
    for job_id in stale_jobs:
        current_app.send_task("routing.job_run", args=[job_id])
    stale_batches = batches_stale_ids()
    for batch_id in stale_batches:
        current_app.send_task("routing.batch_run", args=[batch_id])
    return {
        "jobs_requeued": len(stale_jobs),
        "batches_requeued": len(stale_batches),
        "jobs_expired": jobs_expire(),
        "files_expired": files_expire(),
    }
