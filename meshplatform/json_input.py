"""Bounded JSON input: the one parse every JSON body the gateway accepts goes through.

Why. orjson reads up to 1,024 levels but writes only 254, Python's json module and pydantic
recurse, and a 10 MB body of `{}` items is millions of objects: any of these turned one
request into a 500 or seconds of a worker's GIL. So a body is parsed once (orjson, C speed,
bounded by the body size) and then walked once, iteratively, against three limits before
any validation works on it: nesting depth, item count and string size (settings, see
README). The walk touches each container once and costs ~5 µs for a typical chat body.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from meshplatform.errors import BadRequest, ValidationDetail

NUL = "\x00"


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """The bounds a JSON body must stay within (see MESH_MAX_JSON_* in settings)."""

    max_depth: int
    max_items: int
    max_string_chars: int
    forbid_nul: bool = False

    @classmethod
    def from_settings(cls, *, forbid_nul: bool = False) -> JsonLimits:
        """Read once per process (a settings lookup costs about a microsecond each)."""
        cached = _cached.get(forbid_nul)
        if cached is None:
            cached = _cached[forbid_nul] = cls(
                max_depth=settings.MESH_MAX_JSON_DEPTH,
                max_items=settings.MESH_MAX_JSON_ITEMS,
                max_string_chars=settings.MESH_MAX_STRING_CHARS,
                forbid_nul=forbid_nul,
            )
        return cached


_cached: dict[bool, JsonLimits] = {}


@receiver(setting_changed)
def _limits_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("MESH_MAX_JSON", "MESH_MAX_STRING")):
        _cached.clear()


def json_invalid(message: str) -> BadRequest:
    return BadRequest(
        f"Request body is not valid JSON: {message}.",
        param="body",
        details=[{"loc": ["body"], "msg": f"Invalid JSON: {message}", "type": "json_invalid"}],
    )


def _too_deep(limits: JsonLimits, loc: list[str | int]) -> BadRequest:
    msg = f"JSON nesting deeper than {limits.max_depth} levels (MESH_MAX_JSON_DEPTH)"
    return _refusal(msg, "json_too_deep", loc)


def _refusal(msg: str, error_type: str, loc: list[str | int]) -> BadRequest:
    param = ".".join(str(part) for part in loc[1:]) or "body"
    detail: ValidationDetail = {"loc": loc, "msg": msg, "type": error_type}
    return BadRequest(f"Invalid request: {param}: {msg}", param=param, details=[detail])


def json_loads_bounded(body: bytes | str, limits: JsonLimits | None = None) -> Any:
    """The parsed body, once it is valid JSON within `limits` (422 `validation_error` otherwise)."""
    limits = limits or JsonLimits.from_settings()
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "depth" in error.msg or "recursion" in error.msg.lower():
            raise _too_deep(limits, ["body"]) from None
        raise json_invalid(error.msg) from None
    if limits.forbid_nul and not _may_hold_nul(body):
        limits = dataclasses.replace(limits, forbid_nul=False)
    json_bounds_check(value, limits, size=len(body))
    return value


def _may_hold_nul(body: bytes | str) -> bool:
    """JSON can spell NUL only as an escape, so a body without one holds none (C-speed search)."""
    return b"\\u0000" in body if isinstance(body, bytes) else "\\u0000" in body


def json_bounds_check(
    value: Any, limits: JsonLimits, loc: tuple[str | int, ...] = ("body",), *, size: int | None = None
) -> None:
    """Raise the 422 for the first limit `value` breaks; a no-op for values within them.

    `size` (the body's length) skips what it rules out: a body shorter than the string limit
    holds no string that long, and one with no escaped NUL holds no NUL. The fast walk keeps no
    paths; only a refusal walks again to name where it happened.
    """
    problem: tuple[str, list[str | int] | None] | None
    if size is not None and size <= limits.max_string_chars and not limits.forbid_nul:
        depth, items = _depth_and_items(value, limits)
        problem = ("depth", None) if depth else ("items", []) if items else None
    else:
        problem = _first_problem(value, limits)
    if problem is None:
        return
    kind, path = problem if problem[1] is not None else (problem[0], _path_of(value, limits, problem[0]))
    where: list[str | int] = [*loc, *(path or [])]
    if kind == "depth":
        raise _too_deep(limits, where)
    if kind == "items":
        msg = f"more than {limits.max_items} JSON values in one body (MESH_MAX_JSON_ITEMS)"
        raise _refusal(msg, "json_too_large", list(loc))
    if kind == "string":
        msg = f"string longer than {limits.max_string_chars} characters (MESH_MAX_STRING_CHARS)"
        raise _refusal(msg, "string_too_long", where)
    raise _refusal("must not contain NUL characters (\\u0000)", "string_nul", where)


def _depth_and_items(value: Any, limits: JsonLimits) -> tuple[bool, bool]:
    """(too deep, too many items), one level at a time, looking at containers only."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth, items, max_depth, max_items = 1, 0, limits.max_depth, limits.max_items
    while level:
        if depth > max_depth:
            return True, False
        below = []
        for node in level:
            children = node.values() if type(node) is dict else node
            items += len(children)
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
        if items > max_items:
            return False, True
        level, depth = below, depth + 1
    return False, False


def _first_problem(value: Any, limits: JsonLimits) -> tuple[str, list[str | int] | None] | None:
    """(kind, None) for the first limit broken, found without tracking paths; None when all hold."""
    if isinstance(value, str):
        return _string_problem(value, limits)
    if not isinstance(value, (dict, list)):
        return None
    max_depth, max_chars, nul = limits.max_depth, limits.max_string_chars, limits.forbid_nul
    stack: list[tuple[Any, int]] = [(value, 1)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return "depth", None
        if type(node) is dict:
            for name in node:
                if len(name) > max_chars or (nul and NUL in name):
                    return ("string" if len(name) > max_chars else "nul"), None
            children: Any = node.values()
        else:
            children = node
        items += len(children)
        if items > limits.max_items:
            return "items", []
        for child in children:
            kind = type(child)
            if kind is str:
                if len(child) > max_chars:
                    return "string", None
                if nul and NUL in child:
                    return "nul", None
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
    return None


def _string_problem(value: str, limits: JsonLimits) -> tuple[str, list[str | int]] | None:
    if len(value) > limits.max_string_chars:
        return "string", []
    if limits.forbid_nul and NUL in value:
        return "nul", []
    return None


def _path_of(value: Any, limits: JsonLimits, kind: str) -> list[str | int] | None:
    """Where the first `kind` problem is (a refusal's slow path: depth-first with paths)."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if kind == "depth" and len(path) >= limits.max_depth:
            return path[: limits.max_depth]
        entries = node.items() if isinstance(node, dict) else enumerate(node)
        for name, child in entries:
            if isinstance(name, str) and _breaks(name, limits, kind):
                return [*path, name]
            if isinstance(child, str) and _breaks(child, limits, kind):
                return [*path, name]
            if isinstance(child, (dict, list)):
                stack.append((child, [*path, name]))
    return None


def _breaks(value: str, limits: JsonLimits, kind: str) -> bool:
    problem = _string_problem(value, limits)
    return problem is not None and problem[0] == kind


def has_nul(value: str | None) -> bool:
    return value is not None and NUL in value
