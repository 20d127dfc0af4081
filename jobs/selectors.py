"""Reads of jobs, files and batches, always scoped to one tenant (another tenant's id is a 404)."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from jobs.models import Batch, Job, StoredFile
from keys.models import ApiKey
from keys.selectors import resolved_key_from_model
from keys.types import ResolvedKey
from meshplatform.errors import NotFound

M = TypeVar("M", bound=Model)


def _one(queryset: QuerySet[M], *, tenant_id: int, object_id: str, what: str) -> M:
    found = queryset.filter(tenant_id=tenant_id, id=object_id).first()
    if found is None:
        raise NotFound(f"No {what} with id {object_id!r}.", param="id")
    return found


def job_get(*, tenant_id: int, job_id: str) -> Job:
    return _one(Job.objects.all(), tenant_id=tenant_id, object_id=job_id, what="job")


def file_get(*, tenant_id: int, file_id: str) -> StoredFile:
    return _one(StoredFile.objects.all(), tenant_id=tenant_id, object_id=file_id, what="file")


def batch_get(*, tenant_id: int, batch_id: str) -> Batch:
    return _one(
        Batch.objects.select_related("input_file"), tenant_id=tenant_id, object_id=batch_id, what="batch"
    )


def job_list(
    *, tenant_id: int, status: str | None = None, model: str | None = None, session_id: str | None = None
) -> QuerySet[Job]:
    jobs = Job.objects.filter(tenant_id=tenant_id)
    if status:
        jobs = jobs.filter(status=status)
    if model:
        jobs = jobs.filter(model=model)
    if session_id:
        jobs = jobs.filter(session_id=session_id)
    return jobs


def file_list(*, tenant_id: int, purpose: str | None = None) -> QuerySet[StoredFile]:
    files = StoredFile.objects.filter(tenant_id=tenant_id)
    return files.filter(purpose=purpose) if purpose else files


def batch_list(*, tenant_id: int) -> QuerySet[Batch]:
    return Batch.objects.filter(tenant_id=tenant_id)


def cursor_page(
    queryset: QuerySet[M], *, after: str | None, limit: int, order: str = "desc"
) -> tuple[list[M], bool]:
    """OpenAI's cursor pages: ids are ULID-suffixed, so id order is creation order."""
    ordered = queryset.order_by("-id" if order == "desc" else "id")
    if after:
        ordered = ordered.filter(id__lt=after) if order == "desc" else ordered.filter(id__gt=after)
    rows = list(ordered[: limit + 1])
    return rows[:limit], len(rows) > limit


def api_key_of(*, key_id: int | None) -> tuple[ResolvedKey, str] | None:
    """The key a job or batch runs under (as it is now: a revoked key's work fails), and its hash."""
    if key_id is None:
        return None
    api_key: Any = ApiKey.objects.select_related("tenant").filter(pk=key_id).first()
    if api_key is None:
        return None
    return resolved_key_from_model(api_key), api_key.key_hash


def job_key_of(*, job: Job) -> tuple[ResolvedKey, str] | None:
    return api_key_of(key_id=job.api_key_id)
