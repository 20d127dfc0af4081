"""GET /v1/jobs, GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel; /v1/files; /v1/batches (OpenAI's
Files and Batches APIs). Thin: parse, call one service or selector, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header

from jobs.http import choice_param, json_object_body, json_response, keyed_view, page_params, required_str
from jobs.models import JobStatus
from jobs.selectors import batch_get, batch_list, cursor_page, file_get, file_list, job_get, job_list
from jobs.serializers import batch_object, file_object, job_object, list_object
from jobs.services.batches import batch_cancel, batch_create
from jobs.services.files import file_delete, file_open, file_store
from jobs.services.jobs import job_cancel
from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, UnsupportedMediaType

CHUNK = 64 * 1024


def _jobs_list(request: HttpRequest, key: ResolvedKey) -> HttpResponseBase:
    after, limit, order = page_params(request)
    jobs = job_list(
        tenant_id=key.tenant_id,
        status=choice_param(request, "status", tuple(JobStatus.values)),
        model=request.GET.get("model") or None,
        session_id=request.GET.get("session_id") or None,
    )
    rows, has_more = cursor_page(jobs, after=after, limit=limit, order=order)
    return json_response(list_object([job_object(job) for job in rows], has_more=has_more))


def _job_detail(request: HttpRequest, key: ResolvedKey, job_id: str) -> HttpResponseBase:
    return json_response(job_object(job_get(tenant_id=key.tenant_id, job_id=job_id)))


def _job_cancel(request: HttpRequest, key: ResolvedKey, job_id: str) -> HttpResponseBase:
    job_get(tenant_id=key.tenant_id, job_id=job_id)  # 404 for another tenant's job
    return json_response(job_object(job_cancel(tenant_id=key.tenant_id, job_id=job_id)))


def _files_list(request: HttpRequest, key: ResolvedKey) -> HttpResponseBase:
    after, limit, order = page_params(request, max_limit=10000)
    files = file_list(tenant_id=key.tenant_id, purpose=request.GET.get("purpose") or None)
    rows, has_more = cursor_page(files, after=after, limit=limit, order=order)
    return json_response(list_object([file_object(f) for f in rows], has_more=has_more))


def _file_upload(request: HttpRequest, key: ResolvedKey) -> HttpResponseBase:
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            "Upload files as multipart/form-data (fields 'file' and 'purpose').", param="file"
        )
    upload = request.FILES.get("file")
    if upload is None:
        raise BadRequest("The multipart field 'file' is required.", param="file")
    purpose = request.POST.get("purpose") or ""
    stored = file_store(tenant_id=key.tenant_id, upload=upload, purpose=purpose)
    return json_response(file_object(stored))


def _file_detail(request: HttpRequest, key: ResolvedKey, file_id: str) -> HttpResponseBase:
    return json_response(file_object(file_get(tenant_id=key.tenant_id, file_id=file_id)))


def _file_delete(request: HttpRequest, key: ResolvedKey, file_id: str) -> HttpResponseBase:
    file_delete(stored=file_get(tenant_id=key.tenant_id, file_id=file_id))
    return json_response({"id": file_id, "object": "file", "deleted": True})


async def _file_chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    """The file in 64 KiB reads off the event loop (a sync iterator would be read whole into
    memory by Django's ASGI handler before the first byte)."""
    read = sync_to_async(handle.read, thread_sensitive=False)
    try:
        while chunk := await read(CHUNK):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()


def _file_content(request: HttpRequest, key: ResolvedKey, file_id: str) -> HttpResponseBase:
    stored = file_get(tenant_id=key.tenant_id, file_id=file_id)
    response = StreamingHttpResponse(_file_chunks(file_open(stored=stored)), content_type="application/jsonl")
    response["Content-Length"] = str(stored.bytes)
    response["Content-Disposition"] = content_disposition_header(True, stored.filename) or "attachment"
    return response


def _batches_list(request: HttpRequest, key: ResolvedKey) -> HttpResponseBase:
    after, limit, order = page_params(request)
    rows, has_more = cursor_page(batch_list(tenant_id=key.tenant_id), after=after, limit=limit, order=order)
    return json_response(list_object([batch_object(b) for b in rows], has_more=has_more))


def _batch_create(request: HttpRequest, key: ResolvedKey) -> HttpResponseBase:
    data = json_object_body(request)
    batch = batch_create(
        key=key,
        input_file_id=required_str(data, "input_file_id"),
        endpoint=required_str(data, "endpoint"),
        completion_window=required_str(data, "completion_window"),
        metadata=data.get("metadata"),
    )
    return json_response(batch_object(batch))


def _batch_detail(request: HttpRequest, key: ResolvedKey, batch_id: str) -> HttpResponseBase:
    return json_response(batch_object(batch_get(tenant_id=key.tenant_id, batch_id=batch_id)))


def _batch_cancel(request: HttpRequest, key: ResolvedKey, batch_id: str) -> HttpResponseBase:
    return json_response(batch_object(batch_cancel(tenant_id=key.tenant_id, batch_id=batch_id)))


jobs = keyed_view(GET=_jobs_list)
job = keyed_view(GET=_job_detail)
job_cancel_view = keyed_view(POST=_job_cancel)
files = keyed_view(GET=_files_list, POST=_file_upload)
file = keyed_view(GET=_file_detail, DELETE=_file_delete)
file_content = keyed_view(GET=_file_content)
batches = keyed_view(GET=_batches_list, POST=_batch_create)
batch = keyed_view(GET=_batch_detail)
batch_cancel_view = keyed_view(POST=_batch_cancel)
