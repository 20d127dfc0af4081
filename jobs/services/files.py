"""File writes: store an upload (streamed, never read whole into memory), write a batch's result
files, delete. Bytes go through Django's storage API (`storages["mesh_files"]`: local disk by
default, any django-storages backend such as S3 by configuration)."""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Iterable
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from jobs.ids import new_file_id
from jobs.models import BATCH_FINAL, Batch, FilePurpose, StoredFile
from meshplatform.errors import BadRequest, Conflict, PayloadTooLarge

READ_CHUNK = 64 * 1024


def files_storage() -> Storage:
    return storages["mesh_files"]


def _storage_name(tenant_id: int, file_id: str) -> str:
    return f"tenant-{tenant_id}/{file_id}.jsonl"


def _check_jsonl(upload: UploadedFile) -> None:
    """UTF-8 text, not empty, at most MESH_BATCH_MAX_LINES lines; read in chunks (lines themselves
    are checked when a batch runs them, so one bad line does not refuse the file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, size, last = 0, 0, b"\n"
    for chunk in upload.chunks(READ_CHUNK):
        size += len(chunk)
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError:
            raise BadRequest("The file is not UTF-8 text (JSONL expected).", param="file") from None
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BadRequest("The file is not UTF-8 text (JSONL expected).", param="file") from None
    if size == 0:
        raise BadRequest("The file is empty.", param="file")
    lines += 0 if last == b"\n" else 1
    if lines > settings.MESH_BATCH_MAX_LINES:
        raise BadRequest(
            f"The file has {lines} lines; a batch file may have at most {settings.MESH_BATCH_MAX_LINES}.",
            param="file",
        )


def file_store(*, tenant_id: int, upload: UploadedFile, purpose: str) -> StoredFile:
    """Check and store an uploaded JSONL file for the tenant."""
    if purpose != FilePurpose.BATCH:
        raise BadRequest(f"purpose must be 'batch' (got {purpose!r}).", param="purpose")
    if upload.size is not None and upload.size > settings.MESH_FILES_MAX_BYTES:
        raise PayloadTooLarge(
            f"The file exceeds the {settings.MESH_FILES_MAX_BYTES} byte limit.", param="file"
        )
    _check_jsonl(upload)
    upload.seek(0)
    file_id = new_file_id()
    stored_name = files_storage().save(_storage_name(tenant_id, file_id), upload)
    return StoredFile.objects.create(
        id=file_id,
        tenant_id=tenant_id,
        purpose=purpose,
        filename=(upload.name or "upload.jsonl")[:255],
        bytes=upload.size or 0,
        storage_name=stored_name,
        created_at=timezone.now(),
    )


def file_write_lines(
    *, tenant_id: int, filename: str, lines: Iterable[bytes], spool: IO[bytes]
) -> StoredFile:
    """Write a batch result file: lines go to `spool` (a temporary file), then to storage."""
    size = 0
    for line in lines:
        spool.write(line)
        spool.write(b"\n")
        size += len(line) + 1
    spool.seek(0)
    file_id = new_file_id()
    stored_name = files_storage().save(_storage_name(tenant_id, file_id), File(spool, name=filename))
    return StoredFile.objects.create(
        id=file_id,
        tenant_id=tenant_id,
        purpose=FilePurpose.BATCH_OUTPUT,
        filename=filename,
        bytes=size,
        storage_name=stored_name,
        created_at=timezone.now(),
    )


def file_open(*, stored: StoredFile) -> IO[bytes]:
    handle: IO[bytes] = files_storage().open(stored.storage_name, "rb")
    return handle


def file_delete(*, stored: StoredFile) -> None:
    """Delete a file; 409 while a batch that has not finished reads it."""
    with transaction.atomic():
        if Batch.objects.filter(input_file=stored).exclude(status__in=BATCH_FINAL).exists():
            raise Conflict(f"File {stored.id} is the input of a batch in progress; cancel the batch first.")
        name = stored.storage_name
        stored.delete()
        transaction.on_commit(lambda: files_storage().delete(name))


def files_expire(*, now: dt.datetime | None = None) -> int:
    expired = StoredFile.objects.filter(expires_at__lt=now or timezone.now())
    count = 0
    for stored in expired.iterator():
        try:
            file_delete(stored=stored)
        except Conflict:
            continue
        count += 1
    return count
