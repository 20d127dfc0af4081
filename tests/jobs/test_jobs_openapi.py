"""The served OpenAPI document describes the jobs, files and batches APIs."""

from __future__ import annotations

import httpx


def test_openapi_lists_the_jobs_files_and_batches_endpoints(api_url: str) -> None:
    document = httpx.get(f"{api_url}/openapi.json").json()
    paths = document["paths"]
    expected = {
        "/v1/jobs": {"get"},
        "/v1/jobs/{job_id}": {"get"},
        "/v1/jobs/{job_id}/cancel": {"post"},
        "/v1/files": {"get", "post"},
        "/v1/files/{file_id}": {"get", "delete"},
        "/v1/files/{file_id}/content": {"get"},
        "/v1/batches": {"get", "post"},
        "/v1/batches/{batch_id}": {"get"},
        "/v1/batches/{batch_id}/cancel": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    assert "202" in paths["/v1/chat/completions"]["post"]["responses"]
    schemas = document["components"]["schemas"]
    statuses = {"validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling"}
    assert set(schemas["BatchObject"]["properties"]["status"]["enum"]) == {*statuses, "cancelled"}
    assert schemas["ChatCompletionJob"]["properties"]["object"]["const"] == "chat.completion.job"
    assert "webhook_url" in schemas["ChatCompletionRequest"]["properties"]
