"""Azure OpenAI: OpenAI's chat format, addressed by deployment, `api-version` and an `api-key` header.

Model ids are `azure/<deployment>` (the catalog's upstream name is the deployment). Azure adds
content-filter results to answers (`prompt_filter_results`, `choices[].content_filter_results`,
`finish_reason: "content_filter"`), which pass through as they are; a prompt its filter refuses
is a 400 with code `content_filter`, which keeps its status and code for the client.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import orjson

from routing.providers.base import (
    ErrorFields,
    UpstreamCall,
    UpstreamRequest,
    json_headers,
    openai_error_fields,
)
from routing.providers.openai_compat import OpenAICompatibleAdapter

# "... Please retry after 6 seconds." (Azure's 429 message; the header usually says it too).
_RETRY_AFTER_TEXT = re.compile(r"retry after (\d+(?:\.\d+)?) second", re.IGNORECASE)


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    def build_request(self, call: UpstreamCall) -> UpstreamRequest:
        body = dict(self.upstream_body(call))
        body.pop("model", None)  # the deployment names the model
        if call.stream:
            body["stream"] = True
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        version = self.options.get("api_version", "2024-10-21")
        deployment = quote(call.upstream_model, safe="")
        return UpstreamRequest(
            url=f"{self.base_url}/openai/deployments/{deployment}/chat/completions?api-version={version}",
            headers=json_headers({"api-key": self.api_key}, stream=call.stream),
            body=orjson.dumps(body),
        )

    def error_fields(self, body: bytes) -> ErrorFields:
        fields = openai_error_fields(body)
        hint = _RETRY_AFTER_TEXT.search(fields.message or "")
        return fields._replace(retry_after_s=float(hint.group(1)) if hint else None)
