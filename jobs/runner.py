"""Running one async job in a worker: claim it, run the completion under a renewed lease, store
the outcome. `run` is the pipeline's completion, injected by routing (which composes this app)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from django.conf import settings

from jobs.selectors import job_key_of
from jobs.services.jobs import Claim, job_claim, job_finish, job_lease_renew
from jobs.types import CompletionOutcome, CompletionRunner, CompletionWork
from meshplatform.db import db_call

logger = logging.getLogger(__name__)

_claim = db_call(job_claim)
_renew = db_call(job_lease_renew)
_finish = db_call(job_finish)
_key_of = db_call(job_key_of)


async def job_execute(*, job_id: str, run: CompletionRunner, record_cancelled: CompletionRunner) -> str:
    """Run the job once, whatever the broker redelivers; returns what happened (for the log).

    A redelivered message finds the job held by a live run (its lease renewed) or finished,
    and does nothing. A run whose worker died leaves a lapsed lease: the next delivery or the
    sweeper takes the job over. The completion's usage event carries the job's request_id,
    which the ledger stores once, so a take-over never bills twice.
    """
    claim = await _claim(job_id=job_id)
    if claim is None:
        return "skipped"
    work = await _work_of(claim)
    if work is None:
        return "failed: key gone"
    if claim.cancelled:
        await record_cancelled(work)  # releases the submission's hold, writes the ledger entry
        return "cancelled"
    completion = asyncio.ensure_future(run(work))
    renewal = asyncio.ensure_future(_keep_lease(claim, completion))
    try:
        outcome = await completion
    except asyncio.CancelledError:
        if renewal.done() and not renewal.cancelled():
            return "cancelled while running"
        raise
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
    stored = await _finish(
        job_id=job_id,
        attempt=claim.attempt,
        result=outcome.body if outcome.ok else None,
        error=None if outcome.ok else _error_of(outcome),
    )
    return f"{'stored' if stored else 'discarded (cancelled or taken over)'}: {outcome.status_code}"


async def _work_of(claim: Claim) -> CompletionWork | None:
    found = await _key_of(job=claim.job)
    if found is None:
        await _finish(
            job_id=claim.job.id,
            attempt=claim.attempt,
            result=None,
            error={"code": "forbidden", "message": "The API key of this job no longer exists."},
        )
        return None
    key, key_hash = found
    return CompletionWork(
        key=key,
        key_hash=key_hash,
        body=claim.job.request,
        request_id=claim.job.request_id,
        admitted=True,
        started_at=claim.job.created_at.timestamp(),  # the submission's time, whichever run bills it
    )


async def _keep_lease(claim: Claim, completion: asyncio.Future[CompletionOutcome]) -> None:
    """Renew the lease every third of it; when the job was cancelled, stop the completion."""
    interval = max(settings.MESH_JOB_LEASE_S / 3, 0.2)
    while True:
        await asyncio.sleep(interval)
        try:
            alive = await _renew(job_id=claim.job.id, attempt=claim.attempt)
        except Exception:  # the database blinked: keep the completion, retry next time
            logger.exception("could not renew the lease of job %s", claim.job.id)
            continue
        if not alive:
            completion.cancel()
            return


def _error_of(outcome: CompletionOutcome) -> dict[str, object]:
    """The error envelope's `error` object, plus the HTTP status a synchronous call would have had."""
    error = outcome.body.get("error")
    body = (
        dict(error) if isinstance(error, dict) else {"code": "upstream_error", "message": str(outcome.body)}
    )
    body["status_code"] = outcome.status_code
    return body
