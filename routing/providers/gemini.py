"""Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`) behind OpenAI's chat format.

Requests: roles map (assistant → model), system/developer messages become `systemInstruction`,
images and files become inline data or file URIs, tools become function declarations (their JSON
Schema cut to Gemini's subset: unsupported keywords are dropped, `$ref`s inlined), tool results
become `functionResponse` parts matched to their call by name, and each call's `thought_signature`
goes back on its part unchanged. Answers: parts become `content`, `tool_calls` (with their
`thought_signature`) and `reasoning_content`; safety blocks are `content_filter`; usageMetadata
becomes usage (thoughts are billed as output). The translation of both lives in `gemini_translate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from routing.http_client import UpstreamResponse
from routing.providers.base import (
    Completion,
    ErrorFields,
    ProviderAdapter,
    UpstreamCall,
    UpstreamRequest,
    json_headers,
    load_json,
    usage_from_openai,
)
from routing.providers.gemini_translate import GeminiStream, completion_from_response, generate_request
from routing.providers.sse import sse_events

# Gemini says "bad API key" with a 400; it is the operator's credentials, not the request.
CREDENTIAL_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"})


class GeminiAdapter(ProviderAdapter):
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        model = quote(call.upstream_model, safe="")
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        return UpstreamRequest(
            url=f"{self.base_url}/models/{model}:{method}",
            headers=json_headers({"x-goog-api-key": self.api_key}, stream=call.stream),
            body=orjson.dumps(generate_request(call)),
        )

    def parse_completion(self, body: bytes, call: UpstreamCall) -> Completion:
        data = load_json(body)
        if not isinstance(data, dict) or not ("candidates" in data or "promptFeedback" in data):
            raise self.malformed("a response that is not a GenerateContentResponse")
        payload = completion_from_response(data, call.upstream_model)
        return Completion(payload=payload, usage=usage_from_openai(payload["usage"]))

    async def iter_chunks(
        self, response: UpstreamResponse, call: UpstreamCall
    ) -> AsyncIterator[dict[str, Any]]:
        translator = GeminiStream(self, call.upstream_model)
        async for event in sse_events(response):
            if event.data:
                for chunk in translator.feed(event.data):
                    yield chunk
        yield translator.finish()

    def error_fields(self, body: bytes) -> ErrorFields:
        """`{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details": [...]}}`;
        the code is ErrorInfo's `reason` when given, else the status; RetryInfo says when to retry."""
        data = load_json(body)
        if isinstance(data, list) and data:  # the non-SSE stream shape wraps errors in an array
            data = data[0]
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return super().error_fields(body)
        status = error.get("status") if isinstance(error.get("status"), str) else None
        reason, retry_after = None, None
        for detail in error.get("details") or ():
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("ErrorInfo") and isinstance(detail.get("reason"), str):
                reason = detail["reason"]
            elif kind.endswith("RetryInfo"):
                retry_after = _duration_s(detail.get("retryDelay"))
        message = error.get("message")
        return ErrorFields(
            message=str(message)[:500] if message else None,
            code=reason or status,
            type=status,
            param=None,
            retry_after_s=retry_after,
        )

    def credentials_refused(self, fields: ErrorFields) -> bool:
        return fields.code in CREDENTIAL_REASONS


def _duration_s(value: Any) -> float | None:
    """A protobuf Duration in JSON ("30s", "1.5s")."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return None
    return None
