"""The template editor's server side: a live preview of unsaved content (the real render service) and
a diff between any two versions. Views of PromptTemplateAdmin, tenant-scoped like the rest of it."""

from __future__ import annotations

import difflib
import json
from typing import Any

import orjson
from django.http import JsonResponse

from meshplatform.errors import BadRequest
from templates_app.models import PromptTemplateVersion
from templates_app.rendering import template_compile
from templates_app.schema import SchemaError, messages_validate, variables_validate
from templates_app.types import TemplateContent, VersionPayload

PREVIEW_MAX_BYTES = 256 * 1024


def _problem(error: SchemaError, field: str) -> str:
    first = error.errors[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{field}{'.' + where if where else ''}: {first['msg']}"


def draft_preview(body: bytes) -> JsonResponse:
    """Render posted, unsaved messages with sample values: the slots found, the ones still missing
    (neither a sample value nor a declared default), and the rendered messages or the error."""
    if len(body) > PREVIEW_MAX_BYTES:
        return JsonResponse({"error": "The draft is too large to preview."}, status=413)
    try:
        data = orjson.loads(body)
        values = {str(k): str(v) for k, v in (data.get("values") or {}).items() if str(v) != ""}
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return JsonResponse({"error": "Send a JSON object with messages, variables and values."}, status=400)
    try:
        messages = messages_validate(data.get("messages"))
    except SchemaError as error:
        return JsonResponse({"error": _problem(error, "messages"), "slots": [], "missing": []})
    try:
        variables = variables_validate(data.get("variables") or [])
    except SchemaError as error:
        return JsonResponse({"error": _problem(error, "variables"), "slots": [], "missing": []})
    payload = VersionPayload("draft", "draft", 0, TemplateContent(messages=messages, variables=variables))
    compiled = template_compile(payload)
    missing = compiled.missing(values)
    result: dict[str, Any] = {
        "slots": [{"name": s, "default": compiled.defaults.get(s)} for s in compiled.slots],
        "missing": missing,
        "rendered": None,
        "error": None,
    }
    try:
        result["rendered"] = compiled.render_messages(values)
    except BadRequest as error:
        result["error"] = error.message
    return JsonResponse(result)


def _version_lines(version: PromptTemplateVersion) -> list[str]:
    content = {
        "messages": version.messages,
        "model": version.model or None,
        "params": version.params,
        "variables": version.variables,
    }
    return json.dumps(content, indent=2, ensure_ascii=False).splitlines()


def versions_diff_html(old: PromptTemplateVersion, new: PromptTemplateVersion) -> str:
    """A side-by-side table (difflib, escaped) of the two versions' content as pretty JSON."""
    differ = difflib.HtmlDiff(tabsize=2)  # no wrapcolumn: CSS wraps, words stay whole
    return differ.make_table(
        _version_lines(old),
        _version_lines(new),
        f"version {old.number}",
        f"version {new.number}",
        context=False,
    )
