"""`client.files` and `client.batches`: OpenAI's Files and Batch APIs as the gateway serves them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Unpack
from urllib.parse import quote

from meshapi._base import RequestOptions
from meshapi._transport import AsyncTransport, SyncTransport
from meshapi.types.batches import Batch
from meshapi.types.files import FileDeleted, FileObject
from meshapi.types.shared import ListPage

FileInput = bytes | str | os.PathLike[str] | IO[bytes] | tuple[str, bytes]
DEFAULT_FILENAME = "upload.jsonl"


def upload_part(file: FileInput) -> tuple[str, bytes, str]:
    """(filename, content, content type), read into memory so every retry sends the same bytes."""
    if isinstance(file, tuple):
        name, content = file
    elif isinstance(file, bytes):
        name, content = DEFAULT_FILENAME, file
    elif isinstance(file, str | os.PathLike):
        path = Path(file)
        name, content = path.name, path.read_bytes()
    else:
        name = Path(str(getattr(file, "name", DEFAULT_FILENAME))).name
        content = file.read()
    kind = "application/jsonl" if name.endswith(".jsonl") else "application/octet-stream"
    return name, content, kind


def _id_path(root: str, object_id: str, action: str = "") -> str:
    if not object_id:
        raise ValueError("an id is required")
    return f"{root}/{quote(object_id, safe='')}" + (f"/{action}" if action else "")


def batch_body(
    input_file_id: str, endpoint: str, completion_window: str, metadata: Mapping[str, str] | None
) -> dict[str, object]:
    body: dict[str, object] = {
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


class Files:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(
        self, *, file: FileInput, purpose: str = "batch", **options: Unpack[RequestOptions]
    ) -> FileObject:
        """Uploads `file` (bytes, a path, an open binary file or `(filename, bytes)`)."""
        files, data = {"file": upload_part(file)}, {"purpose": purpose}
        return self._transport.request(FileObject, "POST", "/v1/files", options, files=files, data=data)

    def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[FileObject]:
        params = {"purpose": purpose, "limit": limit, "after": after}
        return self._transport.request(ListPage[FileObject], "GET", "/v1/files", options, params=params)

    def retrieve(self, file_id: str, **options: Unpack[RequestOptions]) -> FileObject:
        return self._transport.request(FileObject, "GET", _id_path("/v1/files", file_id), options)

    def content(self, file_id: str, **options: Unpack[RequestOptions]) -> bytes:
        """The file's bytes (a batch's output file is JSONL, one response per line)."""
        return self._transport.request_bytes(_id_path("/v1/files", file_id, "content"), options)

    def delete(self, file_id: str, **options: Unpack[RequestOptions]) -> FileDeleted:
        return self._transport.request(FileDeleted, "DELETE", _id_path("/v1/files", file_id), options)


class AsyncFiles:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(
        self, *, file: FileInput, purpose: str = "batch", **options: Unpack[RequestOptions]
    ) -> FileObject:
        files, data = {"file": upload_part(file)}, {"purpose": purpose}
        return await self._transport.request(FileObject, "POST", "/v1/files", options, files=files, data=data)

    async def list(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        after: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> ListPage[FileObject]:
        params = {"purpose": purpose, "limit": limit, "after": after}
        return await self._transport.request(ListPage[FileObject], "GET", "/v1/files", options, params=params)

    async def retrieve(self, file_id: str, **options: Unpack[RequestOptions]) -> FileObject:
        return await self._transport.request(FileObject, "GET", _id_path("/v1/files", file_id), options)

    async def content(self, file_id: str, **options: Unpack[RequestOptions]) -> bytes:
        return await self._transport.request_bytes(_id_path("/v1/files", file_id, "content"), options)

    async def delete(self, file_id: str, **options: Unpack[RequestOptions]) -> FileDeleted:
        return await self._transport.request(FileDeleted, "DELETE", _id_path("/v1/files", file_id), options)


class Batches:
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(
        self,
        *,
        input_file_id: str,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Batch:
        body = batch_body(input_file_id, endpoint, completion_window, metadata)
        return self._transport.request(Batch, "POST", "/v1/batches", options, json=body)

    def retrieve(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        return self._transport.request(Batch, "GET", _id_path("/v1/batches", batch_id), options)

    def list(
        self, *, limit: int | None = None, after: str | None = None, **options: Unpack[RequestOptions]
    ) -> ListPage[Batch]:
        params = {"limit": limit, "after": after}
        return self._transport.request(ListPage[Batch], "GET", "/v1/batches", options, params=params)

    def cancel(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        return self._transport.request(Batch, "POST", _id_path("/v1/batches", batch_id, "cancel"), options)


class AsyncBatches:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(
        self,
        *,
        input_file_id: str,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Batch:
        body = batch_body(input_file_id, endpoint, completion_window, metadata)
        return await self._transport.request(Batch, "POST", "/v1/batches", options, json=body)

    async def retrieve(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        return await self._transport.request(Batch, "GET", _id_path("/v1/batches", batch_id), options)

    async def list(
        self, *, limit: int | None = None, after: str | None = None, **options: Unpack[RequestOptions]
    ) -> ListPage[Batch]:
        params = {"limit": limit, "after": after}
        return await self._transport.request(ListPage[Batch], "GET", "/v1/batches", options, params=params)

    async def cancel(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        path = _id_path("/v1/batches", batch_id, "cancel")
        return await self._transport.request(Batch, "POST", path, options)
