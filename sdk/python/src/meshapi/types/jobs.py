"""Async jobs (`async_mode=true`, /v1/jobs): a chat completion run in the background."""

from __future__ import annotations

from meshapi.types._base import Response
from meshapi.types.chat_responses import ChatCompletion
from meshapi.types.errors import ErrorBody

JOB_FINAL_STATUSES = frozenset({"succeeded", "completed", "failed", "cancelled", "canceled", "expired"})


class Job(Response):
    id: str
    object: str = "chat.completion.job"
    status: str = "queued"
    created: int | None = None
    model: str | None = None
    session_id: str | None = None
    result: ChatCompletion | None = None
    """The completion, once the job succeeded."""
    error: ErrorBody | None = None
    """The error envelope's body, when the job failed."""
    started_at: int | None = None
    completed_at: int | None = None
    cancelled_at: int | None = None
    request_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in JOB_FINAL_STATUSES
