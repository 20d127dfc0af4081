"""Plausible values for a JSON Schema: what the fake model writes into tool arguments and
structured output, so clients that validate the answer (instructor, openai's `.parse`,
pydantic-ai) accept it. Every property is filled, optional ones included, as a model does."""

from __future__ import annotations

from typing import Any

# Past this nesting a recursive schema (a tree of itself) stops: optional branches become null,
# arrays empty, objects keep only what they require.
MAX_DEPTH = 6
_STRING_FORMATS: dict[str, str] = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
}
_PLACE_NAMES = {"location", "city", "place", "town"}


def schema_example(schema: Any) -> Any:
    """A value valid against `schema` (a JSON Schema object, `$defs`/`definitions` refs resolved)."""
    return _Generator(schema if isinstance(schema, dict) else {}).value(schema, name="", depth=0)


class _Generator:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def value(self, schema: Any, *, name: str, depth: int) -> Any:
        if not isinstance(schema, dict):
            return "example"  # `true` or a malformed sub-schema: anything goes
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        if "default" in schema and depth > MAX_DEPTH:
            return schema["default"]
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                return self.one_of(options, name=name, depth=depth)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.all_of(schema, name=name, depth=depth)
        kind = _kind(schema)
        if kind == "object":
            return self.object(schema, depth=depth)
        if kind == "array":
            return self.array(schema, name=name, depth=depth)
        if kind in {"integer", "number"}:
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, name)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (`#/$defs/Name`, `#/definitions/Name`, `#`), keeping sibling keys."""
        seen: set[str] = set()
        while isinstance(schema.get("$ref"), str) and schema["$ref"] not in seen:
            ref = schema["$ref"]
            seen.add(ref)
            target = self.pointer(ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) else siblings
        return schema

    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def one_of(self, options: list[Any], *, name: str, depth: int) -> Any:
        """The first non-null option (an optional field gets a real value) unless nesting is deep."""
        non_null = [o for o in options if not (isinstance(o, dict) and self.resolve(o).get("type") == "null")]
        if depth > MAX_DEPTH and len(non_null) < len(options):
            return None
        return self.value(non_null[0] if non_null else options[0], name=name, depth=depth)

    def all_of(self, schema: dict[str, Any], *, name: str, depth: int) -> Any:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part) if isinstance(part, dict) else {}
            for key, value in part.items():
                if key in {"properties", "$defs", "definitions"} and isinstance(value, dict):
                    merged[key] = {**merged.get(key, {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged[key] = [*merged.get(key, []), *value]
                else:
                    merged.setdefault(key, value)
        return self.value(merged, name=name, depth=depth)

    def object(self, schema: dict[str, Any], *, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = (
            required if depth > MAX_DEPTH else [*properties, *(r for r in required if r not in properties)]
        )
        result = {
            prop: self.value(properties.get(prop, {}), name=prop, depth=depth + 1)
            for prop in dict.fromkeys(names)
        }
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict) and depth <= MAX_DEPTH:
            result["key"] = self.value(extra, name="key", depth=depth + 1)  # dict[str, X]
        return result

    def array(self, schema: dict[str, Any], *, name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):  # a tuple: one value per position
            return [self.value(item, name=name, depth=depth + 1) for item in prefix]
        low, high = schema.get("minItems"), schema.get("maxItems")
        minimum = low if isinstance(low, int) else 0
        count = minimum if depth > MAX_DEPTH else max(minimum, 1)
        if isinstance(high, int):
            count = min(count, high)
        items = schema.get("items", {})
        return [self.value(items, name=name, depth=depth + 1) for _ in range(count)]


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()  # Gemini spells types in capitals
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - (1 if integer else 0.5)
    value: float = 1
    if isinstance(low, int | float) and value < low:
        value = low
    if isinstance(high, int | float) and value > high:
        value = high
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = (value // step + (1 if value % step else 0)) * step
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _STRING_FORMATS:
        return _STRING_FORMATS[fmt]
    text = "Paris" if name.lower() in _PLACE_NAMES else "example"
    low = schema.get("minLength")
    high = schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = (text * (low // len(text) + 1))[:low]
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text
