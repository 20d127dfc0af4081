"""Batches (/v1/batches), in OpenAI's shape: a JSONL file of requests run through the gateway."""

from __future__ import annotations

from meshapi.types._base import Response
from meshapi.types.errors import ErrorBody

BATCH_FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchRequestCounts(Response):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchErrors(Response):
    object: str = "list"
    data: list[ErrorBody] = []


class Batch(Response):
    id: str
    object: str = "batch"
    endpoint: str = "/v1/chat/completions"
    input_file_id: str | None = None
    completion_window: str | None = None
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: BatchErrors | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts | None = None
    metadata: dict[str, str] | None = None

    @property
    def done(self) -> bool:
        return self.status in BATCH_FINAL_STATUSES
