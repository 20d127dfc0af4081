"""The admin's template form: the active version's content as editable JSON, validated like the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms

from templates_app.models import PromptTemplate
from templates_app.schema import (
    SchemaError,
    messages_validate,
    model_validate,
    params_validate,
    variables_validate,
)


def _schema_clean(validate: Callable[[Any], Any], value: Any) -> Any:
    try:
        return validate(value)
    except SchemaError as error:
        raise forms.ValidationError(
            [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors]
        ) from None


class PrettyJSONField(forms.JSONField):
    """Indented JSON; nothing at all (never `null`) when there is no value yet."""

    def prepare_value(self, value: Any) -> Any:
        if value is None or value == {} or value == "":
            return ""
        if isinstance(value, (list, dict)):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return super().prepare_value(value)


def _editor_source(editor: str, rows: int) -> forms.Textarea:
    """The JSON the row editor (templates_app/static/templates_app/editor.js) reads and writes;
    without JavaScript it stays an editable JSON box."""
    return forms.Textarea(
        attrs={
            "rows": rows,
            "cols": 100,
            "class": "mesh-json-source",
            "data-editor": editor,
            "style": "font-family: monospace",
        }
    )


class PromptTemplateForm(forms.ModelForm):  # type: ignore[type-arg]
    """Saving with different content makes a new version (see PromptTemplateAdmin.save_model)."""

    messages = PrettyJSONField(
        widget=_editor_source("messages", 14),
        help_text="The chat messages sent before the request's own; write {{name}} where a variable goes.",
    )
    model = forms.CharField(
        required=False, help_text="Optional 'provider/name'; used when a request names none."
    )
    params = PrettyJSONField(
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "cols": 100,
                "style": "font-family: monospace",
                "placeholder": '{"temperature": 0.2, "max_tokens": 300}',
            }
        ),
        help_text="Default request parameters as a JSON object (checked like a request's); "
        "empty = none. A request's own values win.",
    )
    variables = PrettyJSONField(
        required=False,
        widget=_editor_source("variables", 5),
        help_text="Declared variables: a default fills the slot when a request gives no value; "
        "a variable without a default is required.",
    )

    class Meta:
        model = PromptTemplate
        fields = ["tenant", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        active = self.instance.active_version if self.instance.pk else None
        if active is not None:
            self.fields["messages"].initial = active.messages
            self.fields["model"].initial = active.model
            self.fields["params"].initial = active.params
            self.fields["variables"].initial = active.variables

    def clean_messages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = _schema_clean(messages_validate, self.cleaned_data["messages"])
        return result

    def clean_model(self) -> str | None:
        result: str | None = _schema_clean(model_validate, self.cleaned_data["model"])
        return result

    def clean_params(self) -> dict[str, Any]:
        result: dict[str, Any] = _schema_clean(params_validate, self.cleaned_data["params"] or {})
        return result

    def clean_variables(self) -> Any:
        return _schema_clean(variables_validate, self.cleaned_data["variables"] or [])

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        tenant = cleaned.get("tenant") or (self.instance.tenant if self.instance.tenant_id else None)
        name = cleaned.get("name")
        if tenant is not None and name:
            clash = PromptTemplate.objects.filter(tenant=tenant, name=name).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", "This tenant already has a template with this name.")
        return cleaned

    def content_changes(self) -> dict[str, Any]:
        """The edited content, for template_update (which makes a version only if it differs)."""
        return {name: self.cleaned_data[name] for name in ("messages", "model", "params", "variables")}
