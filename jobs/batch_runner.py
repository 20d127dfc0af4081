"""Running a batch in a worker: expand its input into lines, run the pending ones through the
injected completion (bounded per tenant), record each once, finalize into result files.

Crash safety: the run holds a lease on the batch it renews; a redelivered message or the
sweeper finds it held and leaves it, or lapsed (the worker died) and takes over. Finished lines
are stored as they finish (in small groups), so a take-over runs only what was still pending,
and each line's usage event carries the line's own request_id, stored once by the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from django.conf import settings
from django.utils import timezone

from jobs.concurrency import slot_acquire, slot_release
from jobs.ids import new_batch_request_id
from jobs.lines import output_line
from jobs.models import Batch, BatchStatus
from jobs.selectors import api_key_of
from jobs.services.batches import (
    LineResult,
    PendingLine,
    batch_claim,
    batch_expand,
    batch_finalize,
    batch_has_pending,
    batch_lease_renew,
    batch_lines_abandon,
    batch_lines_record,
    batch_pending_lines,
    batch_release,
)
from jobs.types import CompletionRunner, CompletionWork
from keys.types import ResolvedKey
from meshplatform.db import db_call

logger = logging.getLogger(__name__)
FLUSH_EVERY_S = 0.25
FLUSH_LINES = 50


class BatchRun:
    """One worker's run of one batch."""

    def __init__(self, batch: Batch, key: ResolvedKey, key_hash: str, run: CompletionRunner) -> None:
        self.batch = batch
        self.key = key
        self.key_hash = key_hash
        self.run = run
        self.status: str = batch.status
        self.finished: list[LineResult] = []
        self.limit = max(1, settings.MESH_BATCH_CONCURRENCY_PER_TENANT)
        self.lease_s = settings.MESH_UPSTREAM_TIMEOUT_S + 60

    @property
    def stopping(self) -> bool:
        return self.status != BatchStatus.IN_PROGRESS or timezone.now() >= self.batch.expires_at

    async def lines(self) -> None:
        """Run every pending line, at most `limit` at once for the tenant (across workers)."""
        in_flight: set[asyncio.Task[None]] = set()
        local = asyncio.Semaphore(self.limit)
        pending = batch_pending_lines(batch=self.batch)  # read in slices: memory stays flat
        take = db_call(lambda: list(itertools.islice(pending, 200)))
        while (chunk := await take()) and not self.stopping:
            for line in chunk:
                if self.stopping:
                    break
                await local.acquire()
                task = asyncio.ensure_future(self.one(line, local))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                await self.maybe_flush()
        if in_flight:
            await asyncio.wait(in_flight)
        await self.flush()

    async def one(self, line: PendingLine, local: asyncio.Semaphore) -> None:
        member = f"{self.batch.id}:{line.index}"
        try:
            await slot_acquire(
                tenant_id=self.key.tenant_id, member=member, limit=self.limit, lease_s=self.lease_s
            )
            try:
                result = await self.complete(line)
            finally:
                await slot_release(tenant_id=self.key.tenant_id, member=member)
            if result is not None:
                self.finished.append(result)
        except Exception:  # a bug or an outage: the line stays pending for the next run
            logger.exception("batch %s line %s failed to run", self.batch.id, line.index)
        finally:
            local.release()

    async def complete(self, line: PendingLine) -> LineResult | None:
        """The line's outcome; a rate-limited line waits for its window (it was not yet a request)."""
        work = CompletionWork(
            key=self.key,
            key_hash=self.key_hash,
            body=line.body,
            request_id=line.request_id,
            admitted=False,
            default_session_id=self.batch.id,
            # A line run again (its worker died before its result was kept) bills the same row.
            started_at=(self.batch.in_progress_at or self.batch.created_at).timestamp(),
        )
        while True:
            outcome = await self.run(work)
            if outcome.status_code != 429 or outcome.retry_after_s is None:
                break
            if self.stopping:
                return None
            await asyncio.sleep(min(max(outcome.retry_after_s, 0.05), 60))
        record = output_line(
            line_id=new_batch_request_id(),
            custom_id=line.custom_id,
            status_code=outcome.status_code,
            request_id=line.request_id,
            body=outcome.body,
        )
        return LineResult(
            index=line.index,
            succeeded=outcome.ok,
            result=record,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
        )

    _last_flush = 0.0

    async def maybe_flush(self) -> None:
        if len(self.finished) >= FLUSH_LINES or time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            await self.flush()

    async def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self.finished:
            return
        results, self.finished = self.finished, []
        await db_call(batch_lines_record)(batch_id=self.batch.id, results=results)

    async def keep_lease(self) -> None:
        """Renew the lease; learn of a cancellation; store finished lines as they come."""
        interval = max(settings.MESH_JOB_LEASE_S / 3, 0.2)
        while True:
            await asyncio.sleep(min(interval, FLUSH_EVERY_S * 4))
            try:
                status = await db_call(batch_lease_renew)(batch_id=self.batch.id, run=self.batch.runs)
                await self.flush()
            except Exception:
                logger.exception("could not renew the lease of batch %s", self.batch.id)
                continue
            if status is None:  # another run took over: stop starting lines
                self.status = "taken over"
                return
            self.status = status


async def batch_execute(*, batch_id: str, run: CompletionRunner) -> str:
    """Take the batch up where it stands (validating, in progress, cancelling) and carry it through."""
    batch = await db_call(batch_claim)(batch_id=batch_id)
    if batch is None:
        return "skipped"
    lease = asyncio.ensure_future(_renew_lease(batch))  # through expansion, lines and finalizing
    try:
        return await _carry(batch, run)
    finally:
        lease.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lease
        await db_call(batch_release)(batch_id=batch.id, run=batch.runs)


async def _renew_lease(batch: Batch) -> None:
    interval = max(settings.MESH_JOB_LEASE_S / 3, 0.2)
    while True:
        await asyncio.sleep(interval)
        try:
            await db_call(batch_lease_renew)(batch_id=batch.id, run=batch.runs)
        except Exception:  # the database blinked: try again next time
            logger.exception("could not renew the lease of batch %s", batch.id)


async def _carry(batch: Batch, run: CompletionRunner) -> str:
    if batch.status == BatchStatus.VALIDATING:
        batch = await db_call(batch_expand)(batch=batch)
        if batch.status == BatchStatus.FAILED:
            return "failed validation"
    if batch.status == BatchStatus.IN_PROGRESS:
        found = await db_call(api_key_of)(key_id=batch.api_key_id)
        if found is None:
            await db_call(batch_lines_abandon)(
                batch=batch, code="forbidden", message="The batch's API key is gone."
            )
        else:
            batch_run = BatchRun(batch, found[0], found[1], run)
            await _with(batch_run.keep_lease, batch_run.lines)
            if batch_run.status == "taken over":
                return "taken over"
            batch.status = batch_run.status
    return await _conclude(batch)


async def _conclude(batch: Batch) -> str:
    expired = timezone.now() >= batch.expires_at
    if (
        batch.status == BatchStatus.IN_PROGRESS
        and not expired
        and await db_call(batch_has_pending)(batch=batch)
    ):
        return "lines left pending (an outage?): the sweeper resumes the batch"
    if batch.status == BatchStatus.CANCELLING:
        final = BatchStatus.CANCELLED
    elif expired:
        await db_call(batch_lines_abandon)(
            batch=batch, code="batch_expired", message="The batch expired before this line could run."
        )
        final = BatchStatus.EXPIRED
    else:
        final = BatchStatus.COMPLETED
    await db_call(batch_finalize)(batch=batch, final_status=final)
    return str(final)


async def _with(background: Callable[[], Awaitable[None]], work: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.ensure_future(background())
    try:
        await work()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
