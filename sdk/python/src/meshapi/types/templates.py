"""Prompt templates (/v1/templates): the template, its versions and a render preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from meshapi.types._base import Response


class Template(Response):
    id: str
    object: str = "template"
    name: str = ""
    description: str = ""
    version: int = 1
    version_id: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    variables: list[dict[str, Any]] = Field(default_factory=list)
    slots: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TemplateVersion(Response):
    id: str
    object: str = "template.version"
    template_id: str | None = None
    version: int = 1
    active: bool = False
    messages: list[dict[str, Any]] = Field(default_factory=list)
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    variables: list[dict[str, Any]] = Field(default_factory=list)
    slots: list[str] = Field(default_factory=list)
    restored_from: int | None = None
    created_at: datetime | None = None
    created_by: str | None = None


class TemplateRender(Response):
    """The messages a chat request with this template would send (no model is called)."""

    object: str = "template.render"
    template_id: str | None = None
    version: int | None = None
    version_id: str | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list)
