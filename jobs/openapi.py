"""OpenAPI entries of the jobs, files and batches APIs: pydantic models of the objects the views
render (jobs.serializers) and the paths; routing/openapi.py merges them into the document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
BatchStatusName = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class JobWebhook(BaseModel):
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: int | None


class ChatCompletionJob(BaseModel):
    """An async_mode request: `result` is the ChatCompletionResponse once succeeded, `error` the
    envelope's error object (plus `status_code`) once failed or cancelled."""

    id: str
    object: Literal["chat.completion.job"]
    status: JobStatusName
    created: int
    model: str
    session_id: str | None
    request_id: str
    started_at: int | None
    completed_at: int | None
    expires_at: int | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    webhook: JobWebhook | None


class FileObject(BaseModel):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["processed"]
    status_details: str | None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: bool


class FileUpload(BaseModel):
    file: bytes
    purpose: Literal["batch"]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchErrorItem(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"]
    data: list[BatchErrorItem]


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"]
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str | None
    completion_window: str
    status: BatchStatusName
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None


class BatchCreate(BaseModel):
    input_file_id: str
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None


def _list_of(model: type[BaseModel]) -> type[BaseModel]:
    class Page(BaseModel):
        object: Literal["list"]
        data: list[model]  # type: ignore[valid-type]
        first_id: str | None
        last_id: str | None
        has_more: bool

    Page.__name__ = f"{model.__name__}List"
    return Page


JobList, FileList, BatchList = _list_of(ChatCompletionJob), _list_of(FileObject), _list_of(BatchObject)
MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionJob,
    JobList,
    FileObject,
    FileList,
    FileDeleted,
    FileUpload,
    BatchObject,
    BatchList,
    BatchCreate,
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _op(
    op_id: str, summary: str, tag: str, ok: dict[str, Any], errors: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    status = extra.pop("status", "200")
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "security": [{"HTTPBearer": []}],
        **extra,
        "responses": {status: ok, **errors},
    }


def _page_params(*extra: str) -> list[dict[str, Any]]:
    names = ["after", "limit", "order", *extra]
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


def _id(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


def jobs_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The paths, with `errors` (the shared ErrorEnvelope responses by status) picked per operation."""
    e: dict[str, Any] = {s: errors[s] for s in ("401", "403", "404", "422") if s in errors}
    conflict = {"409": {"description": "The object is already finished.", "content": e["404"]["content"]}}
    return {
        "/v1/jobs": {
            "get": _op(
                "list-jobs",
                "List the tenant's async jobs",
                "jobs",
                _json("ChatCompletionJobList", "A page"),
                e,
                parameters=_page_params("status", "model", "session_id"),
            )
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "get-job",
                "An async job: status, result or error",
                "jobs",
                _json("ChatCompletionJob", "The job"),
                e,
                parameters=_id("job_id"),
            )
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "cancel-job",
                "Cancel a queued or running job",
                "jobs",
                _json("ChatCompletionJob", "The job"),
                {**e, **conflict},
                parameters=_id("job_id"),
            )
        },
        "/v1/files": {
            "get": _op(
                "list-files",
                "List files",
                "files",
                _json("FileObjectList", "A page"),
                e,
                parameters=_page_params("purpose"),
            ),
            "post": _op(
                "upload-file",
                "Upload a JSONL batch input (multipart)",
                "files",
                _json("FileObject", "The file"),
                e,
                requestBody={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("FileUpload")}},
                },
            ),
        },
        "/v1/files/{file_id}": {
            "get": _op(
                "get-file", "A file", "files", _json("FileObject", "The file"), e, parameters=_id("file_id")
            ),
            "delete": _op(
                "delete-file",
                "Delete a file",
                "files",
                _json("FileDeleted", "Deleted"),
                {**e, **conflict},
                parameters=_id("file_id"),
            ),
        },
        "/v1/files/{file_id}/content": {
            "get": _op(
                "get-file-content",
                "A file's bytes (JSONL)",
                "files",
                {
                    "description": "The content",
                    "content": {"application/jsonl": {"schema": {"type": "string"}}},
                },
                e,
                parameters=_id("file_id"),
            )
        },
        "/v1/batches": {
            "get": _op(
                "list-batches",
                "List batches",
                "batches",
                _json("BatchObjectList", "A page"),
                e,
                parameters=_page_params(),
            ),
            "post": _op(
                "create-batch",
                "Run a file's requests as a batch",
                "batches",
                _json("BatchObject", "The batch"),
                e,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BatchCreate")}},
                },
            ),
        },
        "/v1/batches/{batch_id}": {
            "get": _op(
                "get-batch",
                "A batch",
                "batches",
                _json("BatchObject", "The batch"),
                e,
                parameters=_id("batch_id"),
            )
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": _op(
                "cancel-batch",
                "Cancel a batch",
                "batches",
                _json("BatchObject", "The batch"),
                {**e, **conflict},
                parameters=_id("batch_id"),
            )
        },
    }
