"""Writes to templates: every content change is a new immutable version; every change of any kind
invalidates the tenant's cached references when the transaction commits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from django.db import IntegrityError, transaction

from keys.audit import audit_record
from meshplatform.errors import Conflict, NotFound
from templates_app.cache import template_cache_invalidate
from templates_app.models import PromptTemplate, PromptTemplateVersion
from templates_app.selectors import version_content
from templates_app.types import TemplateContent


def _version_summary(version: PromptTemplateVersion | None) -> dict[str, Any] | None:
    """What the audit log keeps of a version: its number and whole content."""
    if version is None:
        return None
    return {
        "version": version.number,
        "messages": version.messages,
        "model": version.model,
        "params": version.params,
        "variables": version.variables,
    }


def _invalidate_on_commit(tenant_id: int) -> None:
    transaction.on_commit(lambda: template_cache_invalidate(tenant_id))


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A template named {name!r} already exists.", param="name")


def _version_add(
    *, template: PromptTemplate, content: TemplateContent, created_by: str, restored_from: int | None = None
) -> PromptTemplateVersion:
    """Appends version n+1 and makes it active (the caller holds the template's row lock)."""
    last = template.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = PromptTemplateVersion.objects.create(
        template=template,
        number=last + 1,
        messages=content.messages,
        model=content.model or "",
        params=content.params,
        variables=[v.to_json() for v in content.variables],
        restored_from=restored_from,
        created_by=created_by,
    )
    template.active_version = version
    template.save(update_fields=["active_version", "updated_at"])
    return version


@transaction.atomic
def template_create(
    *, tenant_id: int, name: str, description: str = "", content: TemplateContent, created_by: str
) -> PromptTemplate:
    if PromptTemplate.objects.filter(tenant_id=tenant_id, name=name).exists():
        raise _name_taken(name)
    try:
        with transaction.atomic():
            template = PromptTemplate.objects.create(tenant_id=tenant_id, name=name, description=description)
    except IntegrityError:  # a concurrent create won the race for the name
        raise _name_taken(name) from None
    version = _version_add(template=template, content=content, created_by=created_by)
    audit_record(
        action="template.create",
        target=template,
        tenant_id=tenant_id,
        after={"name": name, "description": description, **(_version_summary(version) or {})},
    )
    _invalidate_on_commit(tenant_id)  # a cached "no such template" for this name must go
    return template


@transaction.atomic
def template_update(
    *,
    template: PromptTemplate,
    created_by: str,
    name: str | None = None,
    description: str | None = None,
    content_changes: Mapping[str, Any] | None = None,
) -> PromptTemplate:
    """Renames and describes in place (the template's identity, not its content). `content_changes`
    (any of messages, model, params, variables) apply over the active version, read under the
    row lock so concurrent edits of different fields do not lose each other; a new version is made
    only when the result differs (an edit that changes nothing makes no version)."""
    template = (
        PromptTemplate.objects.select_for_update(of=("self",))
        .select_related("active_version")
        .get(pk=template.pk)
    )
    before = {"name": template.name, "description": template.description}
    before_version = template.active_version
    if name is not None and name != template.name:
        if PromptTemplate.objects.filter(tenant_id=template.tenant_id, name=name).exists():
            raise _name_taken(name)
        template.name = name
    if description is not None:
        template.description = description
    try:
        with transaction.atomic():
            template.save(update_fields=["name", "description", "updated_at"])
    except IntegrityError:
        raise _name_taken(template.name) from None
    if content_changes:
        active = version_content(template.active_version) if template.active_version else None
        content = replace(active, **content_changes) if active else TemplateContent(**content_changes)
        if content != active:
            _version_add(template=template, content=content, created_by=created_by)
    after = {"name": template.name, "description": template.description}
    if template.active_version != before_version:
        before.update(_version_summary(before_version) or {})
        after.update(_version_summary(template.active_version) or {})
    audit_record(
        action="template.edit", target=template, tenant_id=template.tenant_id, before=before, after=after
    )
    _invalidate_on_commit(template.tenant_id)
    return template


@transaction.atomic
def template_restore(*, template: PromptTemplate, number: int, created_by: str) -> PromptTemplateVersion:
    """Makes version `number`'s content active again as a NEW version copied from it.

    Copying (rather than re-pointing at the old row) keeps "the newest version is the active
    one" and keeps versions an append-only log: the restore has its own number, time and
    author, so the history and the usage ledger show when the old content came back.
    """
    template = (
        PromptTemplate.objects.select_for_update(of=("self",))
        .select_related("active_version")
        .get(pk=template.pk)
    )
    source = template.versions.filter(number=number).first()
    if source is None:
        raise NotFound(f"Template {template.name!r} has no version {number}.", param="version")
    before = _version_summary(template.active_version)
    version = _version_add(
        template=template, content=version_content(source), created_by=created_by, restored_from=number
    )
    audit_record(
        action="template.restore",
        target=template,
        tenant_id=template.tenant_id,
        before=before,
        after={"restored_from": number, **(_version_summary(version) or {})},
    )
    _invalidate_on_commit(template.tenant_id)
    return version


@transaction.atomic
def template_delete(*, template: PromptTemplate) -> None:
    tenant_id = template.tenant_id
    audit_record(
        action="template.delete",
        target=template,
        tenant_id=tenant_id,
        before={"name": template.name, **(_version_summary(template.active_version) or {})},
    )
    template.delete()
    _invalidate_on_commit(tenant_id)
