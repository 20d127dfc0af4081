"""Public ids of jobs, files, batches and batch lines: OpenAI's prefixes + a ULID (sortable by time)."""

from __future__ import annotations

from ulid import ULID


def new_job_id() -> str:
    return f"job_{ULID()}"


def new_file_id() -> str:
    return f"file-{ULID()}"


def new_batch_id() -> str:
    return f"batch_{ULID()}"


def new_batch_request_id() -> str:
    return f"batch_req_{ULID()}"
