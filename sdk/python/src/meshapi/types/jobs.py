"""Async jobs (`async_mode=true`, /v1/jobs): a chat completion run in the background."""

from __future__ import annotations

from meshapi._errors import APIStatusError, error_from_envelope
from meshapi.types._base import Response
from meshapi.types.chat_responses import ChatCompletion
from meshapi.types.errors import ErrorBody, ErrorEnvelope

JOB_FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})


class JobError(ErrorBody):
    """The error envelope's body, plus the status a synchronous call would have answered."""

    status_code: int | None = None


class JobWebhook(Response):
    url: str = ""
    status: str = ""
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: int | None = None


class Job(Response):
    id: str
    object: str = "chat.completion.job"
    status: str = "queued"
    """queued → running → succeeded | failed | cancelled; expired once its retention has passed."""
    created: int | None = None
    model: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    started_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    result: ChatCompletion | None = None
    """The completion, once the job succeeded."""
    error: JobError | None = None
    """What went wrong, once the job failed."""
    webhook: JobWebhook | None = None

    @property
    def done(self) -> bool:
        return self.status in JOB_FINAL_STATUSES

    def error_as_exception(self) -> APIStatusError | None:
        """The exception a synchronous call would have raised (e.g. `UpstreamError`), if it failed."""
        if self.error is None:
            return None
        envelope = ErrorEnvelope(error=self.error, request_id=self.request_id)
        return error_from_envelope(envelope, status_code=self.error.status_code, request_id=self.request_id)

    def completion(self) -> ChatCompletion:
        """The result; raises the job's error as its exception class when it failed."""
        if self.result is not None:
            return self.result
        failure = self.error_as_exception()
        if failure is not None:
            raise failure
        raise ValueError(f"job {self.id} has no result (status {self.status})")
