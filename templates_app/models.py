"""Prompt templates (one per tenant and name) and their immutable versions."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models

from keys.models import Tenant

# No '@' (it pins a version: `name@3`), no '/', and never UUID-shaped (UUIDs address by id).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def template_name_validate(value: str) -> None:
    if not NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            "Use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit.", code="invalid"
        )
    try:
        uuid.UUID(value)
    except ValueError:
        return
    raise ValidationError("A template name cannot look like a UUID.", code="invalid")


class PromptTemplate(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="prompt_templates")
    name = models.CharField(max_length=100, validators=[template_name_validate])
    description = models.TextField(blank=True, default="")
    active_version = models.ForeignKey(
        "PromptTemplateVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "prompt template"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="template_name_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.name


class PromptTemplateVersion(models.Model):
    """Never updated after insert: caches (Redis, compiled renderers) key on its UUID."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    messages = models.JSONField()
    model = models.CharField(max_length=200, blank=True, default="")
    params = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=list, blank=True)
    restored_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version this one was copied from by a restore."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-number"]
        verbose_name = "version"
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="template_version_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name}@{self.number}"
