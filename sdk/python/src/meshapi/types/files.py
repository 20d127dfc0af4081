"""Files (/v1/files), in OpenAI's shape: uploaded JSONL for batches and their output files."""

from __future__ import annotations

from meshapi.types._base import Response


class FileObject(Response):
    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int | None = None
    filename: str | None = None
    purpose: str | None = None
    status: str | None = None
    expires_at: int | None = None


class FileDeleted(Response):
    id: str
    object: str = "file"
    deleted: bool = True
