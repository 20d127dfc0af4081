"""Celery tasks that run completions off the request path: async jobs and batches.

Thin: each runs the jobs app's orchestration with the pipeline's completion plugged in
(routing composes jobs, never the other way round). acks_late (settings) plus the
orchestration's leases make a SIGKILLed worker's task run again without doing work twice.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import shared_task

from jobs.batch_runner import batch_execute
from jobs.runner import job_execute
from routing.background import cancelled_job_record, completion_run

T = TypeVar("T")


@functools.cache
def _worker_loop() -> asyncio.AbstractEventLoop:
    """One event loop per worker process, kept across tasks: its Redis and upstream connections
    (per-loop objects) are reused instead of reopened for every job and batch."""
    return asyncio.new_event_loop()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a task's coroutine, then what it left behind (a shielded ledger write of a cancelled
    job), so nothing waits for the next task to run."""
    loop = _worker_loop()
    result = loop.run_until_complete(coroutine)
    leftovers = asyncio.all_tasks(loop)
    if leftovers:
        loop.run_until_complete(asyncio.wait(leftovers, timeout=30))
    return result


@shared_task(name="routing.job_run", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def job_run(job_id: str) -> str:
    return _run(job_execute(job_id=job_id, run=completion_run, record_cancelled=cancelled_job_record))


@shared_task(name="routing.batch_run", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def batch_run(batch_id: str) -> str:
    return _run(batch_execute(batch_id=batch_id, run=completion_run))
