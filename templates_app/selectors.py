"""Reads of templates, always scoped by tenant: another tenant's template does not exist here."""

from __future__ import annotations

import uuid

from django.db.models import F, Q, QuerySet

from meshplatform.errors import NotFound
from templates_app.models import PromptTemplate, PromptTemplateVersion
from templates_app.types import DeclaredVariable, TemplateContent, VersionPayload

MAX_REF_LENGTH = 200


def template_not_found(ref: str) -> NotFound:
    return NotFound(f"Template {ref!r} not found.", param="template")


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def template_list(*, tenant_id: int) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(tenant_id=tenant_id).select_related("active_version")


def template_get(*, tenant_id: int, ref: str) -> PromptTemplate:
    """The tenant's template by name or UUID; 404 otherwise (whoever else may own it)."""
    if "\x00" in ref:  # no name holds NUL (PostgreSQL text cannot): not a query worth sending
        raise template_not_found(ref)
    as_uuid = _as_uuid(ref)
    lookup = {"uuid": as_uuid} if as_uuid is not None else {"name": ref}
    template = template_list(tenant_id=tenant_id).filter(**lookup).first()
    if template is None:
        raise template_not_found(ref)
    return template


def template_versions(*, template: PromptTemplate) -> QuerySet[PromptTemplateVersion]:
    return template.versions.order_by("-number")


def version_content(version: PromptTemplateVersion) -> TemplateContent:
    return TemplateContent(
        messages=version.messages,
        model=version.model or None,
        params=version.params,
        variables=tuple(DeclaredVariable(**v) for v in version.variables),
    )


def version_payload(version: PromptTemplateVersion) -> VersionPayload:
    return VersionPayload(
        template_id=str(version.template.uuid),
        version_id=str(version.uuid),
        number=version.number,
        content=version_content(version),
    )


def template_version_resolve(*, tenant_id: int, ref: str) -> VersionPayload | None:
    """What a request's `template` names: a name or template UUID (its active version), `name@N`
    (version N), or a version UUID. None when the tenant has no such template or version."""
    if len(ref) > MAX_REF_LENGTH or "\x00" in ref:
        return None
    versions = PromptTemplateVersion.objects.select_related("template").filter(template__tenant_id=tenant_id)
    active = Q(template__active_version=F("pk"))
    as_uuid = _as_uuid(ref)
    if as_uuid is not None:
        version = versions.filter(Q(uuid=as_uuid) | (Q(template__uuid=as_uuid) & active)).first()
    elif "@" in ref:
        name, _, number = ref.partition("@")
        pinnable = number.isascii() and number.isdigit() and len(number) <= 9
        version = versions.filter(template__name=name, number=int(number)).first() if pinnable else None
    else:
        version = versions.filter(active, template__name=ref).first()
    return version_payload(version) if version is not None else None
