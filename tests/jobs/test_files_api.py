"""OpenAI's Files API through the official SDK: upload (multipart, streamed), list, retrieve,
content, delete; limits; two-tenant isolation."""

from __future__ import annotations

import io
from typing import Any

import httpx
import openai
import pytest

from jobs.models import StoredFile
from jobs.services.files import files_storage

LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n' * 3


def test_upload_list_retrieve_download_delete_with_the_sdk(acme_openai: Any, gateway: Any) -> None:
    uploaded = acme_openai.files.create(file=("requests.jsonl", io.BytesIO(LINES)), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(LINES)
    assert uploaded.filename == "requests.jsonl"
    assert uploaded.purpose == "batch"
    assert uploaded.status == "processed"

    assert acme_openai.files.retrieve(uploaded.id).bytes == len(LINES)
    assert [f.id for f in acme_openai.files.list()] == [uploaded.id]
    assert [f.id for f in acme_openai.files.list(purpose="batch")] == [uploaded.id]
    assert acme_openai.files.content(uploaded.id).content == LINES

    stored = StoredFile.objects.get(id=uploaded.id)
    assert files_storage().exists(stored.storage_name)
    deleted = acme_openai.files.delete(uploaded.id)
    assert deleted.deleted is True and deleted.id == uploaded.id
    assert not files_storage().exists(stored.storage_name)
    with pytest.raises(openai.NotFoundError):
        acme_openai.files.retrieve(uploaded.id)


def test_a_large_upload_is_streamed_to_storage(acme_http: httpx.Client) -> None:
    """~6 MiB (past Django's in-memory upload size): spooled to disk, then stored in chunks."""
    line = b'{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {"x": "%s"}}\n' % (
        b"y" * 2000
    )
    data = line * (6 * 1024 * 1024 // len(line))
    response = acme_http.post("/files", data={"purpose": "batch"}, files={"file": ("big.jsonl", data)})
    assert response.status_code == 200, response.text
    assert acme_http.get(f"/files/{response.json()['id']}/content").content == data


def test_bad_uploads_get_clear_4xx(acme_http: httpx.Client) -> None:
    def upload(content: bytes, purpose: str = "batch") -> httpx.Response:
        return acme_http.post("/files", data={"purpose": purpose}, files={"file": ("f.jsonl", content)})

    wrong = upload(LINES, purpose="fine-tune")
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "purpose"
    assert upload(b"").status_code == 422
    assert upload(b"\xff\xfe not utf-8\n").status_code == 422
    no_file = acme_http.post("/files", data={"purpose": "batch"})
    assert no_file.status_code == 415 or no_file.json()["error"]["param"] == "file"
    as_json = acme_http.post("/files", json={"purpose": "batch"})
    assert as_json.status_code == 415
    assert acme_http.get("/files/file-nope").status_code == 404
    assert acme_http.put("/files").status_code == 405
    assert StoredFile.objects.count() == 0


def test_files_over_the_configured_size_get_413(simulator: Any, acme_key: Any, gateway: Any) -> None:
    """A gateway with MESH_FILES_MAX_BYTES=4096: a bigger upload is refused before it is buffered."""
    from tests.conftest import gateway_env
    from tests.support.gateway import GatewayServer

    small = GatewayServer(env=gateway_env(simulator, MESH_FILES_MAX_BYTES="4096"), workers=1)
    small.start()
    try:
        headers = {"Authorization": f"Bearer {acme_key.plaintext}"}
        big = LINES * 100
        response = httpx.post(
            f"{small.base_url}/v1/files",
            headers=headers,
            data={"purpose": "batch"},
            files={"file": ("b.jsonl", big)},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "validation_error"
        fits = httpx.post(
            f"{small.base_url}/v1/files",
            headers=headers,
            data={"purpose": "batch"},
            files={"file": ("s.jsonl", LINES)},
        )
        assert fits.status_code == 200
    finally:
        small.stop()
    assert StoredFile.objects.count() == 1


def test_files_with_too_many_lines_are_refused(simulator: Any, acme_key: Any, gateway: Any) -> None:
    from tests.conftest import gateway_env
    from tests.support.gateway import GatewayServer

    small = GatewayServer(env=gateway_env(simulator, MESH_BATCH_MAX_LINES="2"), workers=1)
    small.start()
    try:
        response = httpx.post(
            f"{small.base_url}/v1/files",
            headers={"Authorization": f"Bearer {acme_key.plaintext}"},
            data={"purpose": "batch"},
            files={"file": ("b.jsonl", LINES)},
        )
    finally:
        small.stop()
    assert response.status_code == 422 and "at most 2" in response.json()["error"]["message"]


def test_another_tenants_files_are_404(acme_openai: Any, globex_key: Any, api_url: str) -> None:
    from openai import OpenAI

    mine = acme_openai.files.create(file=("a.jsonl", io.BytesIO(LINES)), purpose="batch")
    globex = OpenAI(base_url=api_url, api_key=globex_key.plaintext, max_retries=0)
    assert list(globex.files.list()) == []
    for call in (globex.files.retrieve, globex.files.content, globex.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert acme_openai.files.retrieve(mine.id).id == mine.id
    globex.close()
