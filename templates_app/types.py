"""Typed values of prompt templates, shared by services, the cache, rendering and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DeclaredVariable:
    """A variable a template declares; `default` fills its slots when a request gives no value."""

    name: str
    default: str | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "description": self.description}


@dataclass(frozen=True, slots=True)
class TemplateContent:
    """Everything a version holds: what is rendered and sent. Changing any of it makes a new version."""

    messages: list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variables: tuple[DeclaredVariable, ...] = ()


@dataclass(frozen=True, slots=True)
class VersionPayload:
    """One immutable version as the hot path needs it (cached in Redis by reference)."""

    template_id: str
    version_id: str
    number: int
    content: TemplateContent

    def to_json(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "version_id": self.version_id,
            "number": self.number,
            "messages": self.content.messages,
            "model": self.content.model,
            "params": self.content.params,
            "variables": [v.to_json() for v in self.content.variables],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionPayload:
        return cls(
            template_id=data["template_id"],
            version_id=data["version_id"],
            number=data["number"],
            content=TemplateContent(
                messages=data["messages"],
                model=data["model"],
                params=data["params"],
                variables=tuple(DeclaredVariable(**v) for v in data["variables"]),
            ),
        )
