"""DRF serializers of the template API: inputs validated by templates_app.schema, outputs in one shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from templates_app.models import PromptTemplate, PromptTemplateVersion, template_name_validate
from templates_app.rendering import template_slots
from templates_app.schema import (
    SchemaError,
    messages_validate,
    model_validate,
    params_validate,
    variable_values_validate,
    variables_validate,
)

CONTENT_FIELDS = ("messages", "model", "params", "variables")


def _nested(errors: list[dict[str, Any]]) -> Any:
    """Pydantic-style errors as DRF's nested detail, so the envelope's `loc` points inside the field."""
    if any(not e["loc"] for e in errors):
        return [ErrorDetail(e["msg"], code=e["type"]) for e in errors]
    tree: dict[Any, Any] = {}
    for error in errors:
        detail = ErrorDetail(error["msg"], code=error["type"])
        if not _insert(tree, list(error["loc"]), detail):  # a loc both leaf and branch: keep it flat
            tree.setdefault(".".join(str(p) for p in error["loc"]), []).append(detail)
    return tree


def _insert(tree: dict[Any, Any], loc: list[Any], detail: ErrorDetail) -> bool:
    node = tree
    for part in loc[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return False
    leaf = node.setdefault(loc[-1], [])
    if not isinstance(leaf, list):
        return False
    leaf.append(detail)
    return True


@extend_schema_field(OpenApiTypes.ANY)
class SchemaField(serializers.Field[Any, Any, Any, Any]):
    """A JSON value validated by a templates_app.schema function."""

    def __init__(self, validate: Callable[[Any], Any], **kwargs: Any) -> None:
        self.validate_value = validate
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return self.validate_value(data)
        except SchemaError as error:
            raise serializers.ValidationError(_nested(error.errors)) from None


class _Strict(serializers.Serializer[Any]):
    """Rejects fields it does not know (a typo like `variabels` should not pass silently)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = (
            sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        )
        if unknown:
            raise serializers.ValidationError(
                {name: [ErrorDetail("Unknown field.", code="extra_forbidden")] for name in unknown}
            )
        return attrs


class TemplateWriteSerializer(_Strict):
    name = serializers.CharField(max_length=100, validators=[template_name_validate])
    description = serializers.CharField(max_length=10_000, allow_blank=True, required=False, default="")
    messages = SchemaField(messages_validate)
    model = SchemaField(model_validate, allow_null=True, required=False, default=None)
    params = SchemaField(params_validate, required=False, default=dict)
    variables = SchemaField(variables_validate, required=False, default=tuple)


class RenderSerializer(_Strict):
    variables = SchemaField(variable_values_validate, required=False, default=dict)


class RestoreSerializer(_Strict):
    version = serializers.IntegerField(min_value=1)


class RenderResultSerializer(serializers.Serializer[Any]):
    """What POST /v1/templates/{ref}/render returns (documented; the view builds it directly)."""

    object = serializers.CharField(default="template.render")
    template_id = serializers.UUIDField()
    version = serializers.IntegerField()
    version_id = serializers.UUIDField()
    model = serializers.CharField(allow_null=True)
    params = serializers.JSONField()
    messages = serializers.JSONField()


class VersionSerializer(serializers.ModelSerializer[PromptTemplateVersion]):
    id = serializers.UUIDField(source="uuid")
    object = serializers.SerializerMethodField()
    template_id = serializers.UUIDField(source="template.uuid")
    version = serializers.IntegerField(source="number")
    model = serializers.SerializerMethodField()
    slots = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplateVersion
        fields = [
            "id",
            "object",
            "template_id",
            "version",
            "active",
            "messages",
            "model",
            "params",
            "variables",
            "slots",
            "restored_from",
            "created_at",
            "created_by",
        ]

    def get_object(self, version: PromptTemplateVersion) -> str:
        return "template.version"

    def get_model(self, version: PromptTemplateVersion) -> str | None:
        return version.model or None

    def get_slots(self, version: PromptTemplateVersion) -> list[str]:
        return template_slots(version.messages)

    def get_active(self, version: PromptTemplateVersion) -> bool:
        return version.template.active_version_id == version.pk


class TemplateSerializer(serializers.ModelSerializer[PromptTemplate]):
    """A template with its active version's content inlined (what a request by name uses)."""

    id = serializers.UUIDField(source="uuid")
    object = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="active_version.number")
    version_id = serializers.UUIDField(source="active_version.uuid")
    messages = serializers.JSONField(source="active_version.messages")
    model = serializers.SerializerMethodField()
    params = serializers.JSONField(source="active_version.params")
    variables = serializers.JSONField(source="active_version.variables")
    slots = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "object",
            "name",
            "description",
            "version",
            "version_id",
            "messages",
            "model",
            "params",
            "variables",
            "slots",
            "created_at",
            "updated_at",
        ]

    def get_object(self, template: PromptTemplate) -> str:
        return "template"

    def get_model(self, template: PromptTemplate) -> str | None:
        return template.active_version.model or None if template.active_version else None

    def get_slots(self, template: PromptTemplate) -> list[str]:
        return template_slots(template.active_version.messages) if template.active_version else []
