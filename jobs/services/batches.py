"""Batch writes: create, cancel, claim under a lease, expand the input into lines, record each
line's outcome once, finalize into output and error files."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs.ids import new_batch_id, new_batch_request_id
from jobs.lines import BatchRequestLine, MalformedLine, error_line, line_parse
from jobs.models import BATCH_FINAL, Batch, BatchLine, BatchStatus, FilePurpose, LineOutcome, StoredFile
from jobs.services.files import file_open, file_write_lines
from keys.types import ResolvedKey
from meshplatform.errors import BadRequest, Conflict, NotFound
from meshplatform.request_ids import new_request_id

RUN_TASK = "routing.batch_run"  # routing runs the lines (it composes this app), so by name
ENDPOINTS = ("/v1/chat/completions",)
WINDOWS = {"24h": 24 * 3600}


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise BadRequest("metadata must be an object of at most 16 string pairs.", param="metadata")
    for name, value in metadata.items():
        if not isinstance(value, str) or len(name) > 64 or len(value) > 512:
            raise BadRequest(
                "metadata keys are at most 64 characters and values strings of at most 512.", param="metadata"
            )
    return metadata


def batch_create(
    *, key: ResolvedKey, input_file_id: str, endpoint: str, completion_window: str, metadata: Any
) -> Batch:
    if endpoint not in ENDPOINTS:
        raise BadRequest(
            f"endpoint must be one of {', '.join(ENDPOINTS)} (got {endpoint!r}).", param="endpoint"
        )
    if completion_window not in WINDOWS:
        raise BadRequest(
            f"completion_window must be '24h' (got {completion_window!r}).", param="completion_window"
        )
    checked = _check_metadata(metadata)
    stored = StoredFile.objects.filter(tenant_id=key.tenant_id, id=input_file_id).first()
    if stored is None:
        raise NotFound(f"No file with id {input_file_id!r}.", param="input_file_id")
    if stored.purpose != FilePurpose.BATCH:
        raise BadRequest(
            f"File {input_file_id} has purpose {stored.purpose!r}, not 'batch'.", param="input_file_id"
        )
    now = timezone.now()
    batch = Batch.objects.create(
        id=new_batch_id(),
        tenant_id=key.tenant_id,
        api_key_id=key.key_id,
        endpoint=endpoint,
        input_file=stored,
        completion_window=completion_window,
        metadata=checked,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=WINDOWS[completion_window]),
    )
    transaction.on_commit(lambda: batch_enqueue(batch_id=batch.id))
    return batch


def batch_enqueue(*, batch_id: str) -> None:
    current_app.send_task(RUN_TASK, args=[batch_id])


def batch_cancel(*, tenant_id: int, batch_id: str) -> Batch:
    """validating/in_progress → cancelling: lines in flight finish, no new line starts, then the
    run finalizes with what is done (status cancelled)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(tenant_id=tenant_id, id=batch_id).first()
        if batch is None:
            raise NotFound(f"No batch with id {batch_id!r}.", param="batch_id")
        if batch.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
            return batch
        if batch.status in BATCH_FINAL or batch.status == BatchStatus.FINALIZING:
            raise Conflict(f"Batch {batch.id} is already {batch.status}; it cannot be cancelled.")
        batch.status, batch.cancelling_at = BatchStatus.CANCELLING, timezone.now()
        batch.save(update_fields=["status", "cancelling_at"])
        transaction.on_commit(lambda: batch_enqueue(batch_id=batch_id))
    return batch


def batch_claim(*, batch_id: str) -> Batch | None:
    """Take the batch for this run unless a live run holds its lease or it is finished."""
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id).first()
        if batch is None or batch.status in BATCH_FINAL:
            return None
        if batch.lease_until is not None and batch.lease_until > now:
            return None
        batch.lease_until = now + dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
        batch.runs += 1
        batch.save(update_fields=["lease_until", "runs"])
        return batch


def batch_lease_renew(*, batch_id: str, run: int) -> str | None:
    """Extend the lease of the run numbered `run`; the batch's status, or None if taken over."""
    lease = timezone.now() + dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
    updated = Batch.objects.filter(id=batch_id, runs=run).update(lease_until=lease)
    if not updated:
        return None
    return Batch.objects.filter(id=batch_id).values_list("status", flat=True).first()


def batch_release(*, batch_id: str, run: int) -> None:
    Batch.objects.filter(id=batch_id, runs=run).update(lease_until=None)


def _input_lines(batch: Batch) -> Iterator[tuple[int, bytes]]:
    """The input file's non-blank lines with their 0-based line numbers, read line by line."""
    assert batch.input_file is not None
    with file_open(stored=batch.input_file) as handle:
        for index, raw in enumerate(handle):
            if raw.strip():
                yield index, raw


def batch_expand(*, batch: Batch) -> Batch:
    """validating → in_progress: one BatchLine per input line (malformed ones already failed, with
    their error line), or failed when the input is gone or holds no line. All or nothing."""
    now = timezone.now()
    if batch.input_file is None:
        return _validation_failed(batch, "The input file was deleted.")
    with transaction.atomic():
        BatchLine.objects.filter(batch=batch).delete()  # a run that died mid-way left some
        seen: set[str] = set()
        rows: list[BatchLine] = []
        failed = 0
        for index, raw in _input_lines(batch):
            parsed = line_parse(raw, index=index, endpoint=batch.endpoint)
            if isinstance(parsed, BatchRequestLine) and parsed.custom_id in seen:
                parsed = MalformedLine(index, parsed.custom_id, f"Line {index + 1}: duplicate custom_id.")
            row = BatchLine(batch=batch, index=index, request_id=new_request_id())
            if isinstance(parsed, MalformedLine):
                failed += 1
                row.custom_id, row.outcome = parsed.custom_id or "", LineOutcome.FAILED
                row.result = error_line(
                    line_id=new_batch_request_id(),
                    custom_id=parsed.custom_id,
                    code="invalid_request",
                    message=parsed.message,
                )
            else:
                seen.add(parsed.custom_id)
                row.custom_id = parsed.custom_id
            rows.append(row)
            if len(rows) >= 1000:
                BatchLine.objects.bulk_create(rows)
                rows = []
        BatchLine.objects.bulk_create(rows)
        total = BatchLine.objects.filter(batch=batch).count()
        if total == 0:
            transaction.set_rollback(True)
        else:
            Batch.objects.filter(id=batch.id, status=BatchStatus.VALIDATING).update(
                status=BatchStatus.IN_PROGRESS, in_progress_at=now, total=total, completed=0, failed=failed
            )
    if total == 0:
        return _validation_failed(batch, "The input file holds no request line.")
    batch.refresh_from_db()
    return batch


def _validation_failed(batch: Batch, message: str) -> Batch:
    now = timezone.now()
    Batch.objects.filter(id=batch.id).update(
        status=BatchStatus.FAILED,
        failed_at=now,
        errors={
            "object": "list",
            "data": [{"code": "invalid_file", "message": message, "param": "input_file_id", "line": None}],
        },
    )
    batch.refresh_from_db()
    return batch


@dataclass(frozen=True, slots=True)
class PendingLine:
    index: int
    custom_id: str
    request_id: str
    body: dict[str, Any]


def batch_pending_lines(*, batch: Batch) -> Iterator[PendingLine]:
    """The lines still to run, in file order; finished lines are skipped (never run twice)."""
    pending = dict(
        BatchLine.objects.filter(batch=batch, outcome=LineOutcome.PENDING).values_list("index", "request_id")
    )
    if not pending:
        return
    for index, raw in _input_lines(batch):
        request_id = pending.get(index)
        if request_id is None:
            continue
        parsed = line_parse(raw, index=index, endpoint=batch.endpoint)
        assert isinstance(parsed, BatchRequestLine)  # expansion kept only well-formed lines pending
        yield PendingLine(index=index, custom_id=parsed.custom_id, request_id=request_id, body=parsed.body)


def batch_has_pending(*, batch: Batch) -> bool:
    return BatchLine.objects.filter(batch=batch, outcome=LineOutcome.PENDING).exists()


@dataclass(frozen=True, slots=True)
class LineResult:
    index: int
    succeeded: bool
    result: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0


def batch_lines_record(*, batch_id: str, results: list[LineResult]) -> int:
    """Store finished lines and count them, each once (a line already recorded is left alone)."""
    done = failed = 0
    with transaction.atomic():
        for line in results:
            updated = BatchLine.objects.filter(
                batch_id=batch_id, index=line.index, outcome=LineOutcome.PENDING
            ).update(
                outcome=LineOutcome.SUCCEEDED if line.succeeded else LineOutcome.FAILED,
                result=line.result,
                prompt_tokens=line.prompt_tokens,
                completion_tokens=line.completion_tokens,
            )
            if updated:
                done += line.succeeded
                failed += not line.succeeded
        if done or failed:
            Batch.objects.filter(id=batch_id).update(
                completed=F("completed") + done, failed=F("failed") + failed
            )
    return done + failed


def batch_lines_abandon(*, batch: Batch, code: str, message: str) -> int:
    """Lines that will not run (the batch expired): failed, with an error line each."""
    results = [
        LineResult(
            index=index,
            succeeded=False,
            result=error_line(
                line_id=new_batch_request_id(), custom_id=custom_id, code=code, message=message
            ),
        )
        for index, custom_id in BatchLine.objects.filter(
            batch=batch, outcome=LineOutcome.PENDING
        ).values_list("index", "custom_id")
    ]
    return batch_lines_record(batch_id=batch.id, results=results)


def _result_lines(batch: Batch, outcome: str) -> Iterator[bytes]:
    rows = (
        BatchLine.objects.filter(batch=batch, outcome=outcome)
        .order_by("index")
        .values_list("result", flat=True)
    )
    for result in rows.iterator(chunk_size=500):
        yield orjson.dumps(result)


def batch_finalize(*, batch: Batch, final_status: str) -> Batch:
    """Write the output (2xx lines) and error files, then the batch's terminal status."""
    now = timezone.now()
    if final_status == BatchStatus.COMPLETED:
        Batch.objects.filter(id=batch.id).update(status=BatchStatus.FINALIZING, finalizing_at=now)
    files: dict[str, StoredFile | None] = {}
    for field, outcome, suffix in (
        ("output_file", LineOutcome.SUCCEEDED, "output"),
        ("error_file", LineOutcome.FAILED, "error"),
    ):
        if not BatchLine.objects.filter(batch=batch, outcome=outcome).exists():
            files[field] = None
            continue
        with tempfile.TemporaryFile() as spool:
            files[field] = file_write_lines(
                tenant_id=batch.tenant_id,
                filename=f"{batch.id}_{suffix}.jsonl",
                lines=_result_lines(batch, outcome),
                spool=spool,
            )
    stamp = {
        BatchStatus.COMPLETED: "completed_at",
        BatchStatus.CANCELLED: "cancelled_at",
        BatchStatus.EXPIRED: "expired_at",
    }[BatchStatus(final_status)]
    Batch.objects.filter(id=batch.id).update(
        status=final_status,
        output_file=files["output_file"],
        error_file=files["error_file"],
        lease_until=None,
        **{stamp: now},
    )
    batch.refresh_from_db()
    return batch


def batches_stale_ids(*, limit: int = 200) -> list[str]:
    """Unfinished batches no live run holds (their worker died, or their message was lost)."""
    now = timezone.now()
    lapsed = now - dt.timedelta(seconds=settings.MESH_JOB_LEASE_S)
    return list(
        Batch.objects.exclude(status__in=BATCH_FINAL)
        .filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True, created_at__lt=lapsed))
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
