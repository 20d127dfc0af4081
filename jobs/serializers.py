"""The JSON objects of the jobs, files and batches APIs (OpenAI's shapes for files and batches)."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

from jobs.models import Batch, Job, StoredFile


def unix(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


class WebhookObject(TypedDict):
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: int | None


class JobObject(TypedDict):
    id: str
    object: str
    status: str
    created: int
    model: str
    session_id: str | None
    request_id: str
    started_at: int | None
    completed_at: int | None
    expires_at: int | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    webhook: WebhookObject | None


def job_object(job: Job) -> JobObject:
    """`result` is the ChatCompletionResponse once succeeded; `error` the envelope's error once failed."""
    webhook: WebhookObject | None = None
    if job.webhook_url:
        webhook = {
            "url": job.webhook_url,
            "status": job.webhook_status,
            "attempts": job.webhook_attempts,
            "last_status_code": job.webhook_last_status_code,
            "last_error": job.webhook_last_error or None,
            "delivered_at": unix(job.webhook_delivered_at),
        }
    return {
        "id": job.id,
        "object": "chat.completion.job",
        "status": job.status,
        "created": unix(job.created_at) or 0,
        "model": job.model,
        "session_id": job.session_id,
        "request_id": job.request_id,
        "started_at": unix(job.started_at),
        "completed_at": unix(job.completed_at),
        "expires_at": unix(job.expires_at),
        "result": job.result,
        "error": job.error,
        "webhook": webhook,
    }


def file_object(stored: StoredFile) -> dict[str, Any]:
    """OpenAI's FileObject (status `processed`: a stored file is ready to use)."""
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": unix(stored.created_at),
        "expires_at": unix(stored.expires_at),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


def batch_object(batch: Batch) -> dict[str, Any]:
    """OpenAI's Batch object."""
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": unix(batch.created_at),
        "in_progress_at": unix(batch.in_progress_at),
        "expires_at": unix(batch.expires_at),
        "finalizing_at": unix(batch.finalizing_at),
        "completed_at": unix(batch.completed_at),
        "failed_at": unix(batch.failed_at),
        "expired_at": unix(batch.expired_at),
        "cancelling_at": unix(batch.cancelling_at),
        "cancelled_at": unix(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": batch.failed},
        "metadata": batch.metadata,
    }


def list_object(data: list[Any], *, has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: pass `after=last_id` for the next one."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
