"""`client.jobs`: chat completions run in the background (`async_mode`), and waiting for them."""

from __future__ import annotations

import asyncio
import time
from typing import Unpack
from urllib.parse import quote

from meshapi._base import RequestOptions
from meshapi._errors import JobWaitTimeout
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.resources.chat import PATH as COMPLETIONS_PATH
from meshapi.resources.chat import ParamsLike, as_params
from meshapi.types.jobs import Job
from meshapi.types.shared import ListPage

DEFAULT_WAIT_TIMEOUT_S = 600.0
FIRST_POLL_S = 0.25
MAX_POLL_S = 5.0
POLL_GROWTH = 1.5


JobRef = str | Job


def job_id_of(job: JobRef) -> str:
    job_id = job.id if isinstance(job, Job) else job
    if not job_id:
        raise ValueError("job_id must not be empty")
    return job_id


def job_path(job: JobRef, action: str = "") -> str:
    job_id = job_id_of(job)
    return f"/v1/jobs/{quote(job_id, safe='')}" + (f"/{action}" if action else "")


def job_body(params: ParamsLike) -> dict[str, object]:
    return as_params(params).to_body(stream=False, async_mode=True)


def job_list_params(
    limit: int | None,
    after: str | None,
    status: str | None,
    model: str | None,
    session_id: str | None,
    order: str | None,
) -> dict[str, object]:
    """Newest first; pass `after=page.last_id` for the next page."""
    return {
        "limit": limit, "after": after, "status": status, "model": model,
        "session_id": session_id, "order": order,
    }  # fmt: skip


class _Poller:
    """Exponential backoff between polls (0.25 s growing to 5 s), bounded by a deadline."""

    def __init__(self, job_id: str, timeout: float | None, first: float, maximum: float) -> None:
        self.job_id = job_id
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.interval = first
        self.maximum = maximum

    def next_sleep(self) -> float:
        sleep = self.interval
        self.interval = min(self.interval * POLL_GROWTH, self.maximum)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise JobWaitTimeout(f"job {self.job_id} did not finish in time")
            sleep = min(sleep, left)
        return sleep


class Jobs:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> Job:
        """Queues the completion (`async_mode=true`); the gateway answers 202 with the job."""
        return self._transport.request(Job, "POST", COMPLETIONS_PATH, options, json=job_body(params))

    def get(self, job_id: JobRef, **options: Unpack[RequestOptions]) -> Job:
        return self._transport.request(Job, "GET", job_path(job_id), options)

    retrieve = get

    def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        status: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
        order: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[Job]:
        params = job_list_params(limit, after, status, model, session_id, order)
        return self._transport.request(ListPage[Job], "GET", "/v1/jobs", options, params=params)

    def cancel(self, job_id: JobRef, **options: Unpack[RequestOptions]) -> Job:
        return self._transport.request(Job, "POST", job_path(job_id, "cancel"), options)

    def wait(
        self,
        job_id: JobRef,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_S,
        poll_interval: float = FIRST_POLL_S,
        max_poll_interval: float = MAX_POLL_S,
    ) -> Job:
        """Polls until the job is final (succeeded, failed, cancelled…) and returns it;
        `JobWaitTimeout` after `timeout` seconds (None: no limit)."""
        poller = _Poller(job_id_of(job_id), timeout, poll_interval, max_poll_interval)
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            time.sleep(poller.next_sleep())


class AsyncJobs:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(self, params: ParamsLike, **options: Unpack[RequestOptions]) -> Job:
        return await self._transport.request(Job, "POST", COMPLETIONS_PATH, options, json=job_body(params))

    async def get(self, job_id: JobRef, **options: Unpack[RequestOptions]) -> Job:
        return await self._transport.request(Job, "GET", job_path(job_id), options)

    retrieve = get

    async def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        status: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
        order: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[Job]:
        params = job_list_params(limit, after, status, model, session_id, order)
        return await self._transport.request(ListPage[Job], "GET", "/v1/jobs", options, params=params)

    async def cancel(self, job_id: JobRef, **options: Unpack[RequestOptions]) -> Job:
        return await self._transport.request(Job, "POST", job_path(job_id, "cancel"), options)

    async def wait(
        self,
        job_id: JobRef,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_S,
        poll_interval: float = FIRST_POLL_S,
        max_poll_interval: float = MAX_POLL_S,
    ) -> Job:
        poller = _Poller(job_id_of(job_id), timeout, poll_interval, max_poll_interval)
        while True:
            job = await self.get(job_id)
            if job.done:
                return job
            await asyncio.sleep(poller.next_sleep())
