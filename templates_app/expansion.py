"""Expanding a request's `template` + `variables` into messages and defaults (the pipeline's step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshplatform.db import db_call
from templates_app.cache import NOT_FOUND, template_cache_fill, template_cache_get, template_cache_payload
from templates_app.rendering import CompiledTemplate, compiled_for, compiled_get
from templates_app.selectors import MAX_REF_LENGTH, template_not_found, template_version_resolve

_resolve = db_call(template_version_resolve)


@dataclass(frozen=True, slots=True)
class ExpandedTemplate:
    """A rendered template: its messages go before the request's; params are defaults."""

    template_id: str
    version: int
    messages: list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


async def template_expand(*, tenant_id: int, ref: str, variables: dict[str, str]) -> ExpandedTemplate:
    """The tenant's template `ref` (name, name@version, template or version UUID) rendered with
    `variables`: 404 `not_found` for a template the tenant does not have, 422 for missing values."""
    compiled = await template_compiled(tenant_id=tenant_id, ref=ref)
    return ExpandedTemplate(
        template_id=compiled.template_id,
        version=compiled.number,
        messages=compiled.render_messages(variables),
        model=compiled.model,
        params=compiled.render_params(),
    )


async def template_compiled(*, tenant_id: int, ref: str) -> CompiledTemplate:
    """Redis first (one round trip on a hit), the database on a miss; compiled once per version."""
    if len(ref) > MAX_REF_LENGTH:  # never a name or UUID; not worth a cache entry
        raise template_not_found(ref[:MAX_REF_LENGTH] + "…")
    version_id, gen = await template_cache_get(tenant_id, ref)
    if version_id == NOT_FOUND:
        raise template_not_found(ref)
    if version_id is not None:
        compiled = compiled_get(version_id.decode())
        if compiled is not None:
            return compiled
        cached = await template_cache_payload(tenant_id, version_id)
        if cached is not None:
            return compiled_for(cached)
    payload = await _resolve(tenant_id=tenant_id, ref=ref)
    await template_cache_fill(tenant_id, ref, gen, payload)
    if payload is None:
        raise template_not_found(ref)
    return compiled_for(payload)
