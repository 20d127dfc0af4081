"""Batch input lines: parse and check one JSONL line, and the output/error lines OpenAI's format has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MAX_CUSTOM_ID = 500


@dataclass(frozen=True, slots=True)
class BatchRequestLine:
    """A well-formed input line: `{custom_id, method, url, body}`."""

    index: int
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MalformedLine:
    index: int
    custom_id: str | None
    message: str


def line_parse(raw: bytes, *, index: int, endpoint: str) -> BatchRequestLine | MalformedLine:
    """One line of the input file (1-based `index` in messages, as editors count)."""
    where = f"Line {index + 1}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return MalformedLine(index, None, f"{where} is not valid JSON: {error}.")
    if not isinstance(data, dict):
        return MalformedLine(index, None, f"{where} must be a JSON object, not {type(data).__name__}.")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        return MalformedLine(index, None, f"{where} needs a non-empty string 'custom_id'.")
    if len(custom_id) > MAX_CUSTOM_ID:
        return MalformedLine(index, None, f"{where}: 'custom_id' is longer than {MAX_CUSTOM_ID} characters.")
    method = data.get("method")
    if method != "POST":
        return MalformedLine(index, custom_id, f"{where}: 'method' must be \"POST\" (got {method!r}).")
    url = data.get("url")
    if url != endpoint:
        return MalformedLine(
            index, custom_id, f"{where}: 'url' must be the batch's endpoint {endpoint!r} (got {url!r})."
        )
    body = data.get("body")
    if not isinstance(body, dict):
        return MalformedLine(index, custom_id, f"{where}: 'body' must be a JSON object with the request.")
    if body.get("stream") is True or body.get("async_mode") is True:
        return MalformedLine(
            index, custom_id, f"{where}: batch requests cannot use 'stream' or 'async_mode'."
        )
    return BatchRequestLine(index=index, custom_id=custom_id, body=body)


def output_line(
    *, line_id: str, custom_id: str, status_code: int, request_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A request that got an answer (in the output file if 2xx, the error file otherwise)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": None,
    }


def error_line(*, line_id: str, custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    """A line that never became a request (malformed, or the batch expired or was cancelled first)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
