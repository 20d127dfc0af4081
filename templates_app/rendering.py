"""`{{slot}}` rendering. Each version is compiled once into its messages' JSON text, split at the
slots; rendering joins that text with the JSON-escaped values and parses it: one pass over the
original text (a value is inserted literally and never rendered again), fresh objects every time."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from meshplatform.errors import BadRequest, ValidationDetail
from templates_app.types import VersionPayload

# `{{name}}` or `{{ name }}`; anything else between braces is left as written.
SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
COMPILED_CACHE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A text split at its slots: literals[0] slots[0] literals[1] … slots[n-1] literals[n]."""

    literals: tuple[str, ...]
    slots: tuple[str, ...]


def text_compile(text: str) -> TextTemplate | None:
    """None when `text` has no slot (it is then sent as written)."""
    pieces = SLOT.split(text)  # the one capture group puts slot names at odd positions
    if len(pieces) == 1:
        return None
    return TextTemplate(literals=tuple(pieces[0::2]), slots=tuple(pieces[1::2]))


def templated_texts(messages: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str, TextTemplate]]:
    """The text fields that hold slots, as (object, key, compiled text): every message's string
    `content` and `name`, and the `text` of its text content parts. Other fields (image URLs,
    tool calls) are sent as written."""
    for message in messages:
        for key in ("content", "name"):
            value = message.get(key)
            if isinstance(value, str) and (text := text_compile(value)) is not None:
                yield message, key, text
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            is_text = (
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            )
            if is_text and (text := text_compile(part["text"])) is not None:
                yield part, "text", text


def template_slots(messages: list[dict[str, Any]]) -> list[str]:
    """Every distinct slot of `messages`, in order of first appearance."""
    return list(dict.fromkeys(slot for _, _, text in templated_texts(messages) for slot in text.slots))


def _json_escape(value: str) -> str:
    return orjson.dumps(value).decode()[1:-1]


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A version ready to render. `literals` are pieces of the messages' JSON text and
    `slot_at[i]` indexes `slots` for the value between literals[i] and literals[i+1]."""

    template_id: str
    version_id: str
    number: int
    model: str | None
    params: bytes
    literals: tuple[str, ...]
    slot_at: tuple[int, ...]
    slots: tuple[str, ...]
    defaults: Mapping[str, str]

    def missing(self, variables: Mapping[str, str]) -> list[str]:
        return [s for s in self.slots if s not in variables and s not in self.defaults]

    def render_messages(self, variables: Mapping[str, str]) -> list[dict[str, Any]]:
        """The messages with every slot filled; 422 naming every slot that has no value."""
        missing = self.missing(variables)
        if missing:
            raise missing_variables_error(missing)
        if not self.slots:
            return orjson.loads(self.literals[0])  # type: ignore[no-any-return]
        try:
            escaped = [_json_escape(variables[s] if s in variables else self.defaults[s]) for s in self.slots]
        except orjson.JSONEncodeError as error:
            raise BadRequest(f"A variable is not valid text: {error}.", param="variables") from None
        parts: list[str] = [""] * (2 * len(self.slot_at) + 1)
        parts[0::2] = self.literals
        parts[1::2] = [escaped[i] for i in self.slot_at]
        return orjson.loads("".join(parts))  # type: ignore[no-any-return]

    def render_params(self) -> dict[str, Any]:
        return orjson.loads(self.params)  # type: ignore[no-any-return]


def missing_variables_error(missing: list[str]) -> BadRequest:
    details: list[ValidationDetail] = [
        {"loc": ["body", "variables", slot], "msg": "Field required by the template", "type": "missing"}
        for slot in missing
    ]
    names = ", ".join(missing)
    return BadRequest(
        f"The template needs a value for: {names}.", param=f"variables.{missing[0]}", details=details
    )


def template_compile(payload: VersionPayload) -> CompiledTemplate:
    """Replaces each templated text by a unique marker, serialises, then splits the JSON text at
    the markers and re-expands each marker into its text's escaped literals and slot references."""
    marked: list[dict[str, Any]] = orjson.loads(orjson.dumps(payload.content.messages))  # a private copy
    marker = uuid.uuid4().hex
    texts: list[TextTemplate] = []
    for holder, key, text in list(templated_texts(marked)):
        holder[key] = f"{marker}{len(texts)}"
        texts.append(text)
    slots = list(dict.fromkeys(slot for text in texts for slot in text.slots))
    literals, slot_at = [""], []
    for position, piece in enumerate(re.split(f'"{marker}(\\d+)"', orjson.dumps(marked).decode())):
        if position % 2 == 0:
            literals[-1] += piece
            continue
        text = texts[int(piece)]
        literals[-1] += '"' + _json_escape(text.literals[0])
        for slot, literal in zip(text.slots, text.literals[1:], strict=True):
            slot_at.append(slots.index(slot))
            literals.append(_json_escape(literal))
        literals[-1] += '"'
    content = payload.content
    return CompiledTemplate(
        template_id=payload.template_id,
        version_id=payload.version_id,
        number=payload.number,
        model=content.model,
        params=orjson.dumps(content.params),
        literals=tuple(literals),
        slot_at=tuple(slot_at),
        slots=tuple(slots),
        defaults={v.name: v.default for v in content.variables if v.default is not None},
    )


# Versions are immutable, so a compiled version never goes stale: this per-process memo needs
# no invalidation (a changed template is a new version UUID). Bounded; oldest entries go first.
_compiled: dict[str, CompiledTemplate] = {}
_compiled_lock = threading.Lock()


def compiled_get(version_id: str) -> CompiledTemplate | None:
    return _compiled.get(version_id)


def compiled_for(payload: VersionPayload) -> CompiledTemplate:
    compiled = _compiled.get(payload.version_id)
    if compiled is None:
        compiled = template_compile(payload)
        with _compiled_lock:
            while len(_compiled) >= COMPILED_CACHE_SIZE:
                del _compiled[next(iter(_compiled))]
            _compiled[payload.version_id] = compiled
    return compiled
