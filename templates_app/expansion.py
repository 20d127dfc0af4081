"""Expanding a request's `template` + `variables` into messages and defaults (the pipeline's step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshplatform.errors import NotFound


@dataclass(frozen=True, slots=True)
class ExpandedTemplate:
    """A rendered template: its messages go before the request's; params are defaults."""

    template_id: str
    version: int
    messages: list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


async def template_expand(*, tenant_id: int, ref: str, variables: dict[str, str]) -> ExpandedTemplate:
    """The tenant's template `ref` (name, name@version, or UUID) rendered with `variables`."""
    raise NotFound(f"Template {ref!r} not found.", param="template")
