"""What a template may hold, as pydantic models: the chat wire format's messages and parameters
(meshplatform.chat_schema, shared with the completions endpoint) and declared variables."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from meshplatform.chat_schema import ChatMessage, ChatParameters, chat_error_details
from templates_app.types import DeclaredVariable

SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MAX_MESSAGES = 500

# Request fields a template cannot default: Mesh's own, and those that change how the
# gateway itself handles the request (it reads them from the request only).
RESERVED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "template",
        "variables",
        "stream",
        "stream_options",
        "session_id",
        "models",
        "transforms",
        "async_mode",
        "timeout",
    }
)


class TemplateMessage(ChatMessage):
    """A template's message: the chat endpoint's message rules."""


class TemplateParams(ChatParameters):
    """Default request parameters; unknown ones are kept and forwarded like unknown request fields."""


class VariableDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, pattern=SLOT_NAME.pattern)
    default: str | None = None
    description: str = Field(default="", max_length=1000)


_messages = TypeAdapter(Annotated[list[TemplateMessage], Field(min_length=1, max_length=MAX_MESSAGES)])
_variables = TypeAdapter(list[VariableDeclaration])


class SchemaError(Exception):
    """Validation failed; `errors` are pydantic-style (loc relative to the validated value)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid")
        self.errors = errors


def _errors(error: ValidationError, value: Any = None) -> SchemaError:
    """Pydantic's errors with locations relative to `value`, as the chat endpoint reports them."""
    return SchemaError([dict(detail) for detail in chat_error_details(error, value, ())])


def messages_validate(value: Any) -> list[dict[str, Any]]:
    """The messages as given (unknown fields intact, nulls dropped), once they pass the chat rules."""
    try:
        _messages.validate_python(value)
    except ValidationError as error:
        raise _errors(error, value) from None
    return [{k: v for k, v in message.items() if v is not None} for message in value]


def params_validate(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError([{"loc": [], "msg": "Input should be an object", "type": "dict_type"}])
    reserved = sorted(RESERVED_PARAMS.intersection(value))
    if reserved:
        raise SchemaError(
            [
                {
                    "loc": [name],
                    "msg": "a template cannot set this; send it with the request",
                    "type": "forbidden",
                }
                for name in reserved
            ]
        )
    try:
        TemplateParams.model_validate(value)
    except ValidationError as error:
        raise _errors(error, value) from None
    return {k: v for k, v in value.items() if v is not None}


def variables_validate(value: Any) -> tuple[DeclaredVariable, ...]:
    try:
        declared = _variables.validate_python(value)
    except ValidationError as error:
        raise _errors(error) from None
    seen: set[str] = set()
    for index, variable in enumerate(declared):
        if variable.name in seen:
            raise SchemaError([{"loc": [index, "name"], "msg": "declared twice", "type": "duplicate"}])
        seen.add(variable.name)
    return tuple(DeclaredVariable(v.name, v.default, v.description) for v in declared)


def model_validate(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "/" not in value.strip("/") or len(value) > 200:
        raise SchemaError(
            [
                {
                    "loc": [],
                    "msg": "model ids look like 'provider/name', e.g. 'openai/gpt-4o'",
                    "type": "value_error",
                }
            ]
        )
    return value


_values = TypeAdapter(dict[str, Annotated[str, Field(strict=True)]])


def variable_values_validate(value: Any) -> dict[str, str]:
    """Values to render with: strings only, as the chat endpoint's `variables`."""
    try:
        return _values.validate_python(value)
    except ValidationError as error:
        raise _errors(error) from None
